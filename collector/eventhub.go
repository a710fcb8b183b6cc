package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/stele-dev/stele/internal/importer"
)

// EventHubConfig reads Entra diagnostic logs streamed to an Event Hub,
// over the Event Hubs Kafka endpoint: TLS on port 9093, SASL PLAIN with the
// user "$ConnectionString" and the connection string as the password, a
// consumer group over every partition. Each message is {"records":[…]}.
// The cursor is the consumer group's committed offsets, kept by Event
// Hubs; an offset is committed only once every record of every message
// before it is acknowledged by the log.
type EventHubConfig struct {
	// Namespace is "<namespace>.servicebus.windows.net:9093" (the Kafka
	// endpoint); more than one broker address may be given.
	Brokers []string `json:"brokers"`
	// EventHub is the event hub (Kafka topic) name. Default: the
	// connection string's EntityPath.
	EventHub string `json:"event_hub,omitempty"`
	// ConsumerGroup is the Event Hubs consumer group (default "$Default").
	ConsumerGroup string `json:"consumer_group,omitempty"`
	// ConnectionStringFile / ConnectionStringEnv hold the namespace's or
	// hub's connection string (a listen policy is enough).
	ConnectionStringFile string `json:"connection_string_file,omitempty"`
	ConnectionStringEnv  string `json:"connection_string_env,omitempty"`
	// TLSCA verifies the broker against this PEM file instead of the system
	// roots (for test brokers).
	TLSCA string `json:"tls_ca,omitempty"`
	// Tenant is the tenant for records that do not carry tenantId.
	Tenant string `json:"tenant,omitempty"`
	// BatchRecords caps the records per batch (default 2000): a batch is
	// acknowledged as a whole before the cursor moves past it.
	BatchRecords int `json:"batch_records,omitempty"`
	// SessionTimeout is the consumer group session timeout (default 30s;
	// Event Hubs accepts 6s to 300s): how long a collector that died
	// holds its partitions before another takes them.
	SessionTimeout Duration `json:"session_timeout,omitempty"`
	// RebalanceTimeout bounds how long a group rebalance waits for its
	// members to rejoin (default 60s): a collector killed during a
	// rebalance holds it up no longer than this.
	RebalanceTimeout Duration `json:"rebalance_timeout,omitempty"`
}

func (c *EventHubConfig) check() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers is required: the namespace's Kafka endpoint, <namespace>.servicebus.windows.net:9093")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("broker %q is not host:port (the Kafka endpoint is on port 9093)", b)
		}
	}
	if c.ConnectionStringFile == "" && c.ConnectionStringEnv == "" {
		return errors.New("connection_string_file or connection_string_env is required")
	}
	if c.Tenant != "" {
		if err := importer.ValidateTenant(c.Tenant); err != nil {
			return err
		}
	}
	if c.BatchRecords < 0 {
		return errors.New("batch_records is negative")
	}
	return nil
}

// EventHubSource consumes an Event Hub.
type EventHubSource struct {
	cfg  EventHubConfig
	opts []kgo.Opt
	log  *slog.Logger
}

// entityPath is the EntityPath of a connection string.
func entityPath(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "EntityPath") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// NewEventHubSource prepares the Kafka client options. from, when set, is
// where a consumer group with no committed offsets starts (default: the
// oldest event the hub retains).
func NewEventHubSource(cfg EventHubConfig, from time.Time, log *slog.Logger) (*EventHubSource, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cs, err := secret(cfg.ConnectionStringFile, cfg.ConnectionStringEnv, "connection string")
	if err != nil {
		return nil, err
	}
	if !strings.Contains(cs, "Endpoint=") {
		return nil, errors.New("the connection string has no Endpoint=: use the Event Hubs namespace's or hub's connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)")
	}
	if cfg.EventHub == "" {
		cfg.EventHub = entityPath(cs)
	}
	if cfg.EventHub == "" {
		return nil, errors.New("event_hub is required (the connection string names no EntityPath)")
	}
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = "$Default"
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = 2000
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca %s holds no PEM certificate", cfg.TLSCA)
		}
	}
	reset := kgo.NewOffset().AtStart()
	if !from.IsZero() {
		reset = kgo.NewOffset().AfterMilli(from.UnixMilli())
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTLSConfig(tc),
		kgo.SASL(plain.Auth{User: "$ConnectionString", Pass: cs}.AsMechanism()),
		kgo.ConsumerGroup(cfg.ConsumerGroup),
		kgo.ConsumeTopics(cfg.EventHub),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Event Hubs' Kafka endpoint documents these bounds.
		kgo.SessionTimeout(cfg.SessionTimeout.Or(30 * time.Second)),
		kgo.HeartbeatInterval(cfg.SessionTimeout.Or(30*time.Second) / 10),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout.Or(time.Minute)),
		kgo.RequestTimeoutOverhead(60 * time.Second),
		kgo.MetadataMaxAge(3 * time.Minute),
		// A poll's records are acknowledged and committed before the next
		// poll (Wait), so a poll should carry many: Kafka's default of
		// 1 MiB per partition is two or three diagnostic-setting messages
		// (each up to 1 MiB on Event Hubs). Memory stays bounded by
		// FetchMaxBytes.
		kgo.FetchMaxPartitionBytes(8 << 20),
		kgo.FetchMaxBytes(32 << 20),
		// The client's own warnings (a group it cannot join, a session
		// lost) into the collector's log: a consumer that gets no
		// partitions is otherwise silent.
		kgo.WithLogger(kgoLogger{log}),
	}
	return &EventHubSource{cfg: cfg, opts: opts, log: log}, nil
}

// kgoLogger passes franz-go's warnings and errors to slog.
type kgoLogger struct{ log *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

// Provider is Entra.
func (s *EventHubSource) Provider() importer.Provider { return importer.Entra }

// ehPosition is for status only: the offsets last committed per partition.
type ehPosition struct {
	Topic     string          `json:"event_hub"`
	Group     string          `json:"consumer_group"`
	Committed map[int32]int64 `json:"committed"`
}

// Run consumes until ctx ends. The saved cursor is informative: the
// offsets that count are the group's, committed in Event Hubs.
func (s *EventHubSource) Run(ctx context.Context, _ json.RawMessage, emit Emit) error {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	defer cl.AllowRebalance() // before Close, which leaves the group
	pos := ehPosition{Topic: s.cfg.EventHub, Group: s.cfg.ConsumerGroup, Committed: map[int32]int64{}}
	for {
		fetches := cl.PollRecords(ctx, 5*s.cfg.BatchRecords)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetching %s partition %d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			cl.AllowRebalance()
			return ferr
		}
		recs := fetches.Records()
		var items []Item
		for _, r := range recs {
			items = append(items, s.messageItems(r)...)
			if len(items) >= s.cfg.BatchRecords {
				if err := emit(ctx, Batch{Items: items}); err != nil {
					return err
				}
				items = nil
			}
		}
		if len(recs) > 0 {
			for _, r := range recs {
				pos.Committed[r.Partition] = r.Offset + 1
			}
			if err := emit(ctx, Batch{Items: items, Position: pos, Wait: true}); err != nil {
				return err
			}
			// Every record of these messages is in the log: commit.
			if err := s.commit(ctx, cl, recs); err != nil {
				cl.AllowRebalance()
				return err
			}
		} else {
			if err := emit(ctx, Batch{CaughtUp: true}); err != nil {
				return err
			}
		}
		cl.AllowRebalance()
	}
}

// commit commits the offsets after recs. A commit the group refuses
// because it is rebalancing, or has moved on without this member (a
// rebalance that outlasted the batch's delivery), is not an error of the
// source: the partitions' records from the last committed offsets come
// again to whichever member gets them, and the log's dedup makes them
// free. Tearing the client down for it, as before, left the group once
// more (another rebalance) and paid the source's error pause.
func (s *EventHubSource) commit(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	// A commit waits for a join in progress, which the broker bounds by
	// the rebalance timeout.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RebalanceTimeout.Or(time.Minute)+10*time.Second)
	defer cancel()
	err := cl.CommitRecords(cctx, recs...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.UnknownMemberID):
		s.log.Warn("offsets not committed: the consumer group rebalanced; the records after the last commit are read again (the log drops them as duplicates)",
			"err", err, "records", len(recs))
		return nil
	}
	return fmt.Errorf("committing offsets: %w", err)
}

// messageItems splits one Event Hub message into its records.
func (s *EventHubSource) messageItems(r *kgo.Record) []Item {
	where := fmt.Sprintf("eventhub=%s partition=%d offset=%d", r.Topic, r.Partition, r.Offset)
	rd, err := importer.NewReader(bytes.NewReader(r.Value), importer.EventHub)
	if err != nil {
		return []Item{{Position: where, Err: err}}
	}
	var items []Item
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			items = append(items, Item{Position: where, Err: err})
			break
		}
		items = append(items, Item{Raw: rec.Raw, Err: rec.Err, Tenant: s.cfg.Tenant, Position: fmt.Sprintf("%s record=%d", where, rec.N)})
	}
	if len(items) == 0 {
		items = append(items, Item{Position: where, Err: errors.New(`the message holds no records (an Event Hub message from a diagnostic setting is {"records":[…]})`)})
	}
	return items
}
