package monitor_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/testlog"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/monitor"
)

// serveWithFreeze serves the log in dir and its freeze statement (the
// file dir/frozen) at /frozen, as a Stele server does.
func serveWithFreeze(t *testing.T, dir string) string {
	mux := http.NewServeMux()
	mux.Handle("/", tiles.NewHandler(tiles.DirReader(dir)))
	mux.HandleFunc("GET /frozen", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(dir, "frozen"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// TestFollowerCrossesAFreeze: the follower monitors log A, then, once A is
// frozen naming B, reports log_frozen and monitors B; a frozen log that
// grows afterwards is a critical freeze alert and a verification failure.
func TestFollowerCrossesAFreeze(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	kA, kB := testlog.NewKey(t, "a.example/log"), testlog.NewKey(t, "b.example/log")
	testlog.Append(t, dirA, kA.Signer, mkLeaves(t, []ev{{"app/a", "1", "user.signin", base}, {"app/a", "2", "user.signin", base}, {"app/a", "3", "user.signin", base}}), nil)
	testlog.Append(t, dirB, kB.Signer, mkLeaves(t, []ev{{"app/b", "1", "user.signin", base}, {"app/b", "2", "user.signin", base}}), nil)
	urlA, urlB := serveWithFreeze(t, dirA), serveWithFreeze(t, dirB)
	lgA, err := client.NewTileLog(urlA, kA.Verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []monitor.Alert
	newFollower := func() *monitor.Follower {
		f, err := monitor.NewFollower(&client.Chain{}, lgA, func(link *client.ChainLink) (*monitor.Monitor, error) {
			return monitor.New(monitor.Config{Log: link.Log, Alert: func(a monitor.Alert) error { alerts = append(alerts, a); return nil }})
		})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := newFollower()
	if err := f.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Current().Origin() != "a.example/log" || f.Monitor().Trusted().Size != 3 || len(alerts) != 0 {
		t.Fatalf("before the freeze: at %s, %v, alerts %v", f.Current().Origin(), f.Monitor().Trusted(), alerts)
	}

	raw, err := os.ReadFile(filepath.Join(dirA, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(raw, kA.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	st, err := client.SignFreeze(&client.Freeze{Origin: "a.example/log", Size: cp.Size, Root: cp.Root, Successor: "b.example/log", SuccessorKey: kB.VKey, SuccessorURL: urlB}, kA.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "frozen"), st, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Current().Origin() != "b.example/log" || f.Monitor().Trusted().Size != 2 {
		t.Fatalf("after the freeze: at %s, %v", f.Current().Origin(), f.Monitor().Trusted())
	}
	if len(alerts) != 1 || alerts[0].Type != monitor.AlertLogFrozen || alerts[0].Origin != "a.example/log" || alerts[0].Seen.Size != 3 {
		t.Fatalf("alerts: %+v", alerts)
	}
	testlog.Append(t, dirB, kB.Signer, mkLeaves(t, []ev{{"app/b", "3", "user.signin", base}}), nil)
	if err := f.Step(ctx); err != nil || f.Monitor().Trusted().Size != 3 {
		t.Fatalf("following B: %v", err)
	}

	// A grows after its freeze: a new follower from A refuses it.
	testlog.Append(t, dirA, kA.Signer, mkLeaves(t, []ev{{"app/a", "4", "user.signin", base}}), nil)
	alerts = nil
	g := newFollower()
	if err := g.Step(ctx); !errors.Is(err, client.ErrVerification) {
		t.Fatalf("a frozen log that grew: %v", err)
	}
	if len(alerts) != 1 || alerts[0].Type != monitor.AlertFreeze || g.Current().Origin() != "a.example/log" {
		t.Fatalf("alerts for a frozen log that grew: %+v", alerts)
	}
}
