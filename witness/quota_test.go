package witness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestQuota: a log from a list with qpd 24 gets 10 pushed add-checkpoint
// requests (the bucket's floor), then 429 with a Retry-After of one
// request's share of the day (3600 s), counted per origin; requests with
// no valid log signature do not use the quota; a log the operator added
// has none; raising the qpd in the list gives a new, larger bucket.
func TestQuota(t *testing.T) {
	listed, own := newTestLog(t, "listed.example/log"), newTestLog(t, "own.example/log")
	text := func(qpd int) string {
		return fmt.Sprintf("logs/v0\nvkey %s\nqpd %d\ncontact ops@listed.example\n", listed.vkey, qpd)
	}
	ls := newListServer(t, text(24))
	w := newTestWitness(t)
	if _, err := w.AddLog(own.config()); err != nil {
		t.Fatal(err)
	}
	src := ls.srv.URL + "/log-list.1"
	if err := w.LoadLogLists([]LogListConfig{{Source: src}}); err != nil {
		t.Fatal(err)
	}
	if err := w.refreshLogList(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	mustCosign(t, w, own, 0, 2)
	forged := newTestLog(t, listed.origin) // same origin, another key: 403, not counted
	for range 3 {
		if got := pushStatus(t, w, forged, 0, 1); got != http.StatusForbidden {
			t.Fatalf("forged checkpoint: %d, want 403", got)
		}
	}
	mustCosign(t, w, listed, 0, 1)
	for range 9 {
		mustCosign(t, w, listed, 1, 1)
	}
	resp, err := http.Post(w.srv.URL+"/add-checkpoint", "", bytes.NewReader(listed.request(t, 1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3600" || !strings.Contains(string(body), "quota of 24") {
		t.Fatalf("11th request: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	m := get(t, w.srv.URL+"/metrics")
	for _, want := range []string{
		`stele_witness_over_quota_total{origin="listed.example/log"} 1`,
		`stele_witness_add_checkpoint_requests_total{reason="over_quota",status="429"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for range 12 { // the operator's own log has no quota
		mustCosign(t, w, own, 2, 2)
	}
	ls.text.Store(text(86400 * 24)) // a new qpd: a new bucket of an hour's worth
	if err := w.refreshLogList(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		mustCosign(t, w, listed, 1, 1)
	}
}
