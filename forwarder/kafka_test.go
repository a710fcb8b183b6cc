package forwarder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

func startKafka(t testing.TB, topic string, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// consumeAll reads the topic from the start until it has records with
// want distinct keys (duplicates are returned too) or the wait ends.
func consumeAll(t testing.TB, brokers []string, topic string, want int, wait time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []*kgo.Record
	keys := map[string]bool{}
	for len(keys) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			keys[string(r.Key)] = true
		})
	}
	return out
}

// TestKafkaEndToEnd forwards a real log to a Kafka-protocol broker
// (franz-go's kfake): every entry is one message keyed origin/index whose
// value verifies, also with `stele verify`.
func TestKafkaEndToEnd(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 60))
	total := slices.Max(idx) + 1
	k := startKafka(t, "stele")
	settings, _ := json.Marshal(map[string]any{"brokers": k.ListenAddrs(), "topic": "stele"})
	cfg := l.config(t, t.TempDir(), forwarder.SinkConfig{Name: "kafka", Type: "kafka", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()
	recs := consumeAll(t, k.ListenAddrs(), "stele", int(total), 30*time.Second)
	if uint64(len(recs)) != total {
		t.Fatalf("%d messages for %d entries", len(recs), total)
	}
	seen := map[uint64]bool{}
	for _, r := range recs {
		v, err := record.Verify(r.Value, l.verifier, nil)
		if err != nil {
			t.Fatalf("message %s: %v", r.Key, err)
		}
		if want := fmt.Sprintf("%s/%d", v.Doc.Origin, v.Doc.Index); string(r.Key) != want || seen[v.Doc.Index] {
			t.Fatalf("message key %q for entry %d (seen before: %v)", r.Key, v.Doc.Index, seen[v.Doc.Index])
		}
		seen[v.Doc.Index] = true
	}
	p := filepath.Join(t.TempDir(), "msg.json")
	os.WriteFile(p, recs[7].Value, 0o600)
	if code, out, errs := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(out, "record OK") {
		t.Fatalf("stele verify of a Kafka message: exit %d\n%s%s", code, out, errs)
	}
}

// TestKafkaLargeBatch delivers a batch of several MiB to one partition: the
// producer splits it into batches the broker accepts (its default
// message.max.bytes is about 1 MB), nothing is refused.
func TestKafkaLargeBatch(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := forwarder.OpenKafka(forwarder.KafkaConfig{Brokers: c.ListenAddrs(), Topic: "big"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var items []*forwarder.Item
	body := strings.Repeat("x", 8<<10)
	for i := range 600 {
		items = append(items, &forwarder.Item{Doc: &record.Document{Origin: "o", Index: uint64(i), Type: record.TypeEvent},
			JSON: []byte(fmt.Sprintf(`{"index":%d,"pad":%q}`, i, body))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Deliver(ctx, items); err != nil {
		t.Fatalf("a 4.8 MiB batch: %v", err)
	}
	if recs := consumeAll(t, c.ListenAddrs(), "big", len(items), 30*time.Second); len(recs) != len(items) {
		t.Fatalf("%d messages for %d records", len(recs), len(items))
	}
}
