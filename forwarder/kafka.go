package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaConfig configures the Kafka sink: each record is a message whose
// key is "<origin>/<index>" and whose value is the record document (JSON),
// with headers stele-type and stele-index. The producer is franz-go's
// idempotent producer (acks=all): a retried batch is not duplicated within
// one producer session. Across a restart a batch in flight may be sent
// twice; the key lets consumers (or a compacted topic) keep one copy.
// Order: log order within a partition; use a one-partition topic (or
// order by stele-index) where global order matters.
type KafkaConfig struct {
	Brokers []string   `json:"brokers"`
	Topic   string     `json:"topic"`
	TLS     *TLSConfig `json:"tls,omitempty"`
	SASL    *struct {
		// Mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
		Mechanism    string `json:"mechanism"`
		Username     string `json:"username"`
		PasswordFile string `json:"password_file"`
	} `json:"sasl,omitempty"`
	// Compression: none (default), gzip, snappy, lz4 or zstd.
	Compression string `json:"compression,omitempty"`
	// Timeout bounds one batch's produce (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
}

func (c *KafkaConfig) validate() error {
	if len(c.Brokers) == 0 || c.Topic == "" {
		return errors.New("brokers and topic are required")
	}
	if c.SASL != nil {
		switch c.SASL.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
		}
		if c.SASL.Username == "" || c.SASL.PasswordFile == "" {
			return errors.New("sasl needs username and password_file")
		}
	}
	switch c.Compression {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(30 * time.Second)
	}
	return c.TLS.validate()
}

// KafkaSink produces to a Kafka topic.
type KafkaSink struct {
	cfg KafkaConfig
	cl  *kgo.Client
}

func openKafka(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenKafka(*settings.(*KafkaConfig))
}

// OpenKafka connects the idempotent producer.
func OpenKafka(cfg KafkaConfig) (*KafkaSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// franz-go's default producer batch (1,000,012 bytes) fits Kafka's
		// default message.max.bytes: a larger batch is refused whole by the
		// broker (MESSAGE_TOO_LARGE) and its records would be dead-lettered.
		kgo.RecordDeliveryTimeout(time.Duration(cfg.Timeout)),
	}
	switch cfg.Compression {
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.build()
		if err != nil {
			return nil, fmt.Errorf("kafka sink: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := cfg.SASL; s != nil {
		pw, err := readSecret(s.PasswordFile, "kafka sink: sasl.password_file")
		if err != nil {
			return nil, err
		}
		switch s.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: pw}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pw}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pw}.AsSha512Mechanism()))
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return &KafkaSink{cfg: cfg, cl: cl}, nil
}

// Idempotent: no. The idempotent producer removes duplicates of its own
// retries, but a batch resent after a restart is a second copy (same key).
func (s *KafkaSink) Idempotent() bool { return false }

// Deliver produces the records and waits until the brokers acknowledged
// every one (acks=all). A record too large for the topic is refused for
// good; other failures are retried.
func (s *KafkaSink) Deliver(ctx context.Context, items []*Item) error {
	recs := make([]*kgo.Record, len(items))
	for i, it := range items {
		recs[i] = &kgo.Record{
			Key:   []byte(it.Doc.Origin + "/" + strconv.FormatUint(it.Doc.Index, 10)),
			Value: it.JSON,
			Headers: []kgo.RecordHeader{
				{Key: "stele-type", Value: []byte(it.Doc.Type)},
				{Key: "stele-index", Value: []byte(strconv.FormatUint(it.Doc.Index, 10))},
			},
		}
	}
	// Produce the batch, then Flush: the batch's last producer batch goes
	// out at once instead of waiting out the linger (10ms), which only
	// helps producers that keep adding records; this one waits for them.
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		s.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	s.cl.Flush(ctx) // its error is ctx's, and every record's own error says it
	wg.Wait()
	var ie ItemErrors
	for i, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord) {
			if ie.Refused == nil {
				ie.Refused = map[int]error{}
			}
			ie.Refused[i] = fmt.Errorf("kafka: %w", err)
			continue
		}
		if ie.Retry == nil {
			ie.Retry = map[int]error{}
		}
		ie.Retry[i] = fmt.Errorf("kafka: %w", err)
	}
	if ie.Refused == nil && ie.Retry == nil {
		return nil
	}
	return &ie
}

// Close flushes and closes the producer.
func (s *KafkaSink) Close() error {
	s.cl.Close()
	return nil
}
