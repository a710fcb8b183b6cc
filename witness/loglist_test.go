package witness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The lists the witness network published (github.com/transparency-dev/
// witness-network, lists/, at 995d5ce), parsed as they are.
func TestParsePublishedLogLists(t *testing.T) {
	for file, want := range map[string]int{
		"witness-network-testing-log-list.1":              9,
		"witness-network-staging-log-list-10qps-4klogs.1": 1,
	} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		logs, err := parseLogList(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(logs) != want {
			t.Fatalf("%s: %d logs, want %d", file, len(logs), want)
		}
		for _, l := range logs {
			if l.Origin == "" || !strings.HasPrefix(l.Key, l.Origin+"+") || l.QPD == 0 || l.Contact == "" {
				t.Errorf("%s: %+v", file, l)
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join("testdata", "witness-network-testing-log-list.1"))
	logs, _ := parseLogList(b)
	sigsum := logs[3]
	if sigsum.Origin != "sigsum.org/v1/tree/4e89cc51651f0d95f3c6127c15e1a42e3ddf7046c5b17b752689c402e773bb4d" || sigsum.QPD != 8640 ||
		sigsum.Contact != "sigsum-logs (at) glasklarteknik.se | https://git.glasklar.is/glasklar/services/sigsum-logs/-/blob/main/instances/barreleye.md" {
		t.Fatalf("4th log: %+v", sigsum)
	}
}

func TestParseLogList(t *testing.T) {
	a, b := newTestLog(t, "a.example/log"), newTestLog(t, "b.example/log")
	wit := newTestLog(t, "w.example/w") // for a cosignature-typed key below
	cosigKey := strings.Replace(wit.vkey, "+A", "+B", 1)
	entry := func(l *testLog) string { return fmt.Sprintf("vkey %s\nqpd 86400\ncontact ops@example\n", l.vkey) }
	good := []struct {
		name, text string
		want       []listedLog
	}{
		{"empty list", "logs/v0\n", nil},
		{"no final newline", "logs/v0", nil},
		{"comments and blanks", "#\n# List: x\n\n  logs/v0  \n\n# a\n" + entry(a) + "\n\t# b\n" + entry(b),
			[]listedLog{{Origin: a.origin, Key: a.vkey, QPD: 86400, Contact: "ops@example"}, {Origin: b.origin, Key: b.vkey, QPD: 86400, Contact: "ops@example"}}},
		{"origin line", fmt.Sprintf("logs/v0\nvkey %s\norigin other.example/log\nqpd 1\ncontact sysadmin (at) bar.org\n", a.vkey),
			[]listedLog{{Origin: "other.example/log", Key: a.vkey, QPD: 1, Contact: "sysadmin (at) bar.org"}}},
		{"largest qpd", fmt.Sprintf("logs/v0\nvkey %s\nqpd 2147483647\ncontact x\n", a.vkey),
			[]listedLog{{Origin: a.origin, Key: a.vkey, QPD: 1<<31 - 1, Contact: "x"}}},
		{"CRLF and indentation", strings.ReplaceAll("logs/v0\n  "+entry(a), "\n", "\r\n"),
			[]listedLog{{Origin: a.origin, Key: a.vkey, QPD: 86400, Contact: "ops@example"}}},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseLogList([]byte(c.text))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	bad := []struct {
		name, text, want string
	}{
		{"empty", "", "no \"logs/v0\" header"},
		{"comments only", "# x\n", "no \"logs/v0\" header"},
		{"other version", "logs/v1\n", `line 1: the list must start with "logs/v0"`},
		{"entry before header", entry(a), "line 1: the list must start with"},
		{"header twice", "logs/v0\nlogs/v0\n", `line 2: found "logs/v0", expected a vkey line`},
		{"qpd first", "logs/v0\nqpd 5\n", `line 2: found "qpd", expected a vkey line`},
		{"origin after qpd", fmt.Sprintf("logs/v0\nvkey %s\nqpd 5\norigin x\ncontact c\n", a.vkey), `line 4: found "origin", expected a contact line`},
		{"two origins", fmt.Sprintf("logs/v0\nvkey %s\norigin x\norigin y\nqpd 5\ncontact c\n", a.vkey), `line 4: found "origin", expected a qpd line`},
		{"no qpd", fmt.Sprintf("logs/v0\nvkey %s\ncontact c\n", a.vkey), `found "contact", expected a origin or qpd line`},
		{"no contact", fmt.Sprintf("logs/v0\nvkey %s\nqpd 5\n", a.vkey), "line 2: the last log is incomplete"},
		{"no contact before next", fmt.Sprintf("logs/v0\nvkey %s\nqpd 5\n", a.vkey) + entry(b), `line 4: found "vkey", expected a contact line`},
		{"unknown keyword", "logs/v0\n" + entry(a) + "url https://x/\n", `line 5: found "url"`},
		{"tab separator", fmt.Sprintf("logs/v0\nvkey\t%s\n", a.vkey), `found "vkey\t`},
		{"two spaces", fmt.Sprintf("logs/v0\nvkey  %s\n", a.vkey), `one key`},
		{"two keys", fmt.Sprintf("logs/v0\nvkey %s %s\n", a.vkey, b.vkey), `one key`},
		{"bad key", "logs/v0\nvkey notakey\nqpd 1\ncontact c\n", `line 2: vkey "notakey"`},
		{"cosignature key", fmt.Sprintf("logs/v0\nvkey %s\nqpd 1\ncontact c\n", cosigKey), `line 2: vkey`},
		{"qpd zero", fmt.Sprintf("logs/v0\nvkey %s\nqpd 0\ncontact c\n", a.vkey), `qpd "0" must be a decimal in [1, 2^31)`},
		{"qpd 2^31", fmt.Sprintf("logs/v0\nvkey %s\nqpd 2147483648\ncontact c\n", a.vkey), `qpd "2147483648"`},
		{"qpd leading zero", fmt.Sprintf("logs/v0\nvkey %s\nqpd 024\ncontact c\n", a.vkey), `qpd "024"`},
		{"qpd sign", fmt.Sprintf("logs/v0\nvkey %s\nqpd +24\ncontact c\n", a.vkey), `qpd "+24"`},
		{"qpd empty", fmt.Sprintf("logs/v0\nvkey %s\nqpd\ncontact c\n", a.vkey), `qpd ""`},
		{"contact empty", fmt.Sprintf("logs/v0\nvkey %s\nqpd 1\ncontact\n", a.vkey), "a contact line needs contact details"},
		{"origin empty", fmt.Sprintf("logs/v0\nvkey %s\norigin\nqpd 1\ncontact c\n", a.vkey), "an origin line needs the origin"},
		{"same origin twice", "logs/v0\n" + entry(a) + entry(a), `line 5: origin "a.example/log" is listed twice (lines 2 and 5)`},
		{"same origin by origin line", "logs/v0\n" + entry(a) + fmt.Sprintf("vkey %s\norigin a.example/log\nqpd 1\ncontact c\n", b.vkey), "is listed twice"},
		{"NUL", "logs/v0\n" + strings.Replace(entry(a), "ops@", "ops\x00@", 1), "line 4: control character 0x00"},
		{"too large", "logs/v0\n" + strings.Repeat("#", maxLogListBytes), "more than the"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseLogList([]byte(c.text))
			var le *logListError
			if !errors.As(err, &le) {
				t.Fatalf("got %+v, %v; want a *LogListError", got, err)
			}
			if got != nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q (logs %v), want it to contain %q", err, got, c.want)
			}
		})
	}
}

// listServer serves a log list over loopback HTTP; set changes it.
type listServer struct {
	text atomic.Value
	srv  *httptest.Server
	hits atomic.Int64
}

func newListServer(t *testing.T, text string) *listServer {
	s := &listServer{}
	s.text.Store(text)
	s.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		fmt.Fprint(rw, s.text.Load().(string))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func listOf(logs ...*testLog) string {
	out := "# test list\nlogs/v0\n"
	for _, l := range logs {
		out += fmt.Sprintf("vkey %s\nqpd 86400\ncontact ops@%s\n", l.vkey, l.origin)
	}
	return out
}

func listedOrigins(t *testing.T, w *Witness) map[string]string {
	t.Helper()
	logs, err := w.Logs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range logs {
		out[l.Origin] = l.Listed
	}
	return out
}

func pushStatus(t *testing.T, w *testWitness, l *testLog, old, size uint64) int {
	t.Helper()
	return post(t, w.srv.URL, l.request(t, old, size)).status
}

// TestLogListFollow: a followed list adds its logs, and a log removed from
// it stops being cosigned with its state kept, so re-listing it resumes
// from the cosigned size; a log added with add-log is not the list's to
// remove; an unreachable or malformed list changes nothing.
func TestLogListFollow(t *testing.T) {
	a, b, own := newTestLog(t, "a.example/log"), newTestLog(t, "b.example/log"), newTestLog(t, "own.example/log")
	ls := newListServer(t, listOf(a, b, own))
	w := newTestWitness(t)
	if _, err := w.AddLog(own.config()); err != nil {
		t.Fatal(err)
	}
	src := ls.srv.URL + "/log-list.1"
	if err := w.LoadLogLists([]LogListConfig{{Source: src, Mode: LogListFollow}}); err != nil {
		t.Fatal(err)
	}
	if got := pushStatus(t, w, a, 0, 3); got != http.StatusNotFound {
		t.Fatalf("before the first fetch: %d, want 404", got)
	}
	if err := w.refreshLogList(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	if got := listedOrigins(t, w.Witness); got[a.origin] != src || got[b.origin] != src || got[own.origin] != "" {
		t.Fatalf("logs %v", got)
	}
	mustCosign(t, w, a, 0, 3)
	mustCosign(t, w, b, 0, 2)
	mustCosign(t, w, own, 0, 2)

	ls.text.Store(listOf(b)) // a and own leave the list
	if err := w.refreshLogList(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	if got := pushStatus(t, w, a, 3, 5); got != http.StatusNotFound {
		t.Fatalf("a log removed from the list: %d, want 404", got)
	}
	mustCosign(t, w, own, 2, 4) // added with add-log: still witnessed
	if st, ok, err := w.state(a.origin); err != nil || !ok || st.Size != 3 {
		t.Fatalf("removed log's state: %+v %v %v", st, ok, err)
	}

	ls.text.Store("logs/v0\nvkey oops\n") // malformed: nothing changes
	if err := w.refreshLogList(ctx(t), src); err == nil {
		t.Fatal("a malformed list was applied")
	}
	ls.srv.Config.Handler = http.NotFoundHandler()
	if err := w.refreshLogList(ctx(t), src); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a 404 list: %v", err)
	}
	mustCosign(t, w, b, 2, 4)

	ls.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprint(rw, ls.text.Load().(string)) })
	ls.text.Store(listOf(a, b)) // a comes back: it resumes from size 3
	if err := w.refreshLogList(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	if got := pushStatus(t, w, a, 0, 5); got != http.StatusConflict {
		t.Fatalf("re-listed log from old 0: %d, want 409 (it has state at 3)", got)
	}
	mustCosign(t, w, a, 3, 5)

	// The logs a list gave are known at the next start, before any fetch.
	w.srv.Close()
	w.Close()
	w2, err := Open(w.dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if err := w2.LoadLogLists([]LogListConfig{{Source: src, Mode: LogListFollow}}); err != nil {
		t.Fatal(err)
	}
	if got := listedOrigins(t, w2); got[a.origin] != src || got[b.origin] != src {
		t.Fatalf("after a restart: %v", got)
	}
}

// TestLogListDiscover: the witness network's rule — new logs are added,
// and a list that drops a log or changes its key changes nothing.
func TestLogListDiscover(t *testing.T) {
	a, b := newTestLog(t, "a.example/log"), newTestLog(t, "b.example/log")
	dir := t.TempDir()
	file := filepath.Join(dir, "log-list.1")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(listOf(a))
	w := newTestWitness(t)
	if err := w.LoadLogLists([]LogListConfig{{Source: file, Interval: Duration(100 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx(t))
	done := make(chan struct{})
	go func() { w.RunLogLists(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return listedOrigins(t, w.Witness)[a.origin] == file })
	mustCosign(t, w, a, 0, 3)

	other := newTestLog(t, a.origin) // same origin, another key
	write(listOf(other, b))
	waitFor(t, func() bool { return listedOrigins(t, w.Witness)[b.origin] == file })
	mustCosign(t, w, a, 3, 5) // a's key is unchanged, and a stays
	if got := pushStatus(t, w, other, 5, 6); got != http.StatusForbidden {
		t.Fatalf("the list's new key for a known log: %d, want 403", got)
	}
	write("logs/v0\n")
	time.Sleep(200 * time.Millisecond)
	mustCosign(t, w, a, 5, 7)
	mustCosign(t, w, b, 0, 1)
	body := get(t, w.srv.URL+"/metrics")
	for _, m := range []string{
		`stele_witness_loglist_ignored_total{reason="changed_key",source="` + file + `"}`,
		`stele_witness_loglist_logs{source="` + file + `"} 2`,
		`stele_witness_loglist_fetches_total{outcome="ok",source="` + file + `"}`,
	} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestLogListConfigRefused(t *testing.T) {
	w := newTestWitness(t)
	for _, c := range []struct {
		cfg  LogListConfig
		want string
	}{
		{LogListConfig{}, "empty"},
		{LogListConfig{Source: "http://lists.example/log-list.1"}, "fetch it over https"},
		{LogListConfig{Source: "ftp://lists.example/log-list.1"}, "fetch it over https"},
		{LogListConfig{Source: "f", Mode: "sync"}, `mode "sync"`},
		{LogListConfig{Source: "f", Interval: Duration(time.Millisecond)}, "too short"},
	} {
		if err := w.LoadLogLists([]LogListConfig{c.cfg}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
