package store_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/testlog"
)

// filesHolding lists the files under dir that contain marker.
func filesHolding(t *testing.T, dir string, marker []byte) []string {
	return testlog.FilesHolding(t, dir, marker)
}

// TestErasePayloadLeavesNoBytesOnDisk: after ErasePayload the payload's
// bytes are in no file of the store: not in an SSTable, not in a live or
// recycled write-ahead log.
func TestErasePayloadLeavesNoBytesOnDisk(t *testing.T) {
	forLayouts(t, testErasePayloadLeavesNoBytesOnDisk)
}

// layout gives the admission time the i-th payload of a test is stored
// with.
type layout func(i int) time.Time

// forLayouts runs test on both payload layouts: by digest alone (stores
// written before admission order) and in admission order.
func forLayouts(t *testing.T, test func(*testing.T, layout)) {
	t.Run("by-digest", func(t *testing.T) { test(t, func(int) time.Time { return time.Time{} }) })
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t.Run("admission-order", func(t *testing.T) {
		test(t, func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) })
	})
}

func testErasePayloadLeavesNoBytesOnDisk(t *testing.T, at layout) {
	dir := t.TempDir()
	s := open(t, dir)
	marker := []byte("MARKER-7f3a9c-erase-me")
	var ps []store.Payload
	for i := range 50 {
		data := bytes.Repeat([]byte{'a' + byte(i%26)}, 4000)
		if i == 17 {
			data = append(data, marker...)
		}
		ps = append(ps, store.Payload{Digest: digest(string(rune('A' + i))), Admitted: at(i), Salt: salt(byte(i)), Data: data})
	}
	if err := s.PutPayloads(ps[:25]); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPayloads(ps[25:]); err != nil {
		t.Fatal(err)
	}
	// Flush once so the marker is in an SSTable as well as in a log.
	if err := s.Purge(context.Background(), store.Ref{Digest: digest("zzz"), Admitted: at(99)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPayloads([]store.Payload{{Digest: digest("later"), Admitted: at(100), Salt: salt(9), Data: []byte("later")}}); err != nil {
		t.Fatal(err)
	}
	if len(filesHolding(t, dir, marker)) == 0 {
		t.Fatal("the marker is on no file before erasure: the test proves nothing")
	}
	d := ps[17].Digest
	tomb, already, err := s.ErasePayload(context.Background(), ps[17].Ref(), []byte("tombstone-1"))
	if err != nil || already || string(tomb) != "tombstone-1" {
		t.Fatalf("ErasePayload: %q %v %v", tomb, already, err)
	}
	if _, _, err := s.GetPayload(ps[17].Ref()); !errors.Is(err, store.ErrErased) {
		t.Fatalf("GetPayload after erasure: %v, want ErrErased", err)
	}
	tomb, already, err = s.ErasePayload(context.Background(), ps[17].Ref(), []byte("tombstone-2"))
	if err != nil || !already || string(tomb) != "tombstone-1" {
		t.Fatalf("second ErasePayload: %q %v %v", tomb, already, err)
	}
	// Obsolete files are removed in the background.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hits := filesHolding(t, dir, marker)
		if len(hits) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erased bytes still on disk in %v", hits)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "payloads", "archive")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an archive directory exists: %v", err)
	}
	mustGetRef(t, s, ps[18].Ref(), ps[18].Salt, ps[18].Data)
	mustGetRef(t, s, store.Ref{Digest: digest("later"), Admitted: at(100)}, salt(9), []byte("later"))
	// The tombstone survives a restart.
	closeStore(t, s)
	s = open(t, dir)
	if got, err := s.Tombstone(d); err != nil || string(got) != "tombstone-1" {
		t.Fatalf("tombstone after restart: %q %v", got, err)
	}
	closeStore(t, s)
}

// TestPurgePendingAfterCrash: a crash between the tombstone and the purge
// leaves a marker; the next PurgePending removes the bytes from disk.
func TestPurgePendingAfterCrash(t *testing.T) { forLayouts(t, testPurgePendingAfterCrash) }

func testPurgePendingAfterCrash(t *testing.T, at layout) {
	dir := t.TempDir()
	s := open(t, dir)
	marker := []byte("MARKER-51b2-purge-after-crash")
	d := digest("crash")
	p := store.Payload{Digest: d, Admitted: at(1), Salt: salt(1), Data: append(bytes.Repeat([]byte{'q'}, 3000), marker...)}
	if err := s.PutPayloads([]store.Payload{p}); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background(), ref(digest("other"))); err != nil { // flush: the marker is in an SSTable
		t.Fatal(err)
	}
	if err := store.EraseWithoutPurge(s, p.Ref(), []byte("tomb")); err != nil {
		t.Fatal(err)
	}
	if len(filesHolding(t, dir, marker)) == 0 {
		t.Fatal("the marker is on no file before the purge: the test proves nothing")
	}
	// A clean close stands in for the crash (Pebble may compact on close,
	// so the bytes check below is strongest before it; the marker count is
	// what a crash leaves either way).
	closeStore(t, s)
	s = open(t, dir)
	defer closeStore(t, s)
	n, err := s.PurgePending(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PurgePending = %d, %v; want 1", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for hits := filesHolding(t, dir, marker); len(hits) > 0; hits = filesHolding(t, dir, marker) {
		if time.Now().After(deadline) {
			t.Fatalf("erased bytes still on disk in %v", hits)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, err := s.PurgePending(context.Background()); err != nil || n != 0 {
		t.Fatalf("second PurgePending = %d, %v; want 0", n, err)
	}
	if got, err := s.Tombstone(d); err != nil || string(got) != "tomb" {
		t.Fatalf("tombstone: %q %v", got, err)
	}
}
