package monitor_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stele-dev/stele/monitor"
)

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []monitor.Alert
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var a monitor.Alert
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &a) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got = append(got, a)
	}))
	defer srv.Close()
	send := monitor.Webhook(nil, srv.URL)
	i := uint64(7)
	if err := send(monitor.Alert{Type: monitor.AlertRule, Rule: "r", Index: &i}); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || len(got) != 1 || got[0].Rule != "r" || *got[0].Index != 7 {
		t.Fatalf("calls %d, got %+v", calls, got)
	}
	srv.Close()
	if err := monitor.Webhook(nil, srv.URL)(monitor.Alert{Type: "rule"}); err == nil {
		t.Fatal("a dead webhook reported success")
	}
}
