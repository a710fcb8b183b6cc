package witness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseLogList: any bytes as a witness network log list give logs or a
// *logListError, never a panic; what is accepted has a unique origin,
// an Ed25519 key, qpd in [1, 2^31) and a contact per log, and written back
// in the format parses to the same logs.
func FuzzParseLogList(f *testing.F) {
	for _, file := range []string{"witness-network-testing-log-list.1", "witness-network-staging-log-list-10qps-4klogs.1"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	k := "a.example/log+ef5e8dc0+AZ6y+UjnBQ6UoWqGa6mw4Oo7Gs4ZJlT8a8Ie4zUytsvu"
	f.Add([]byte("logs/v0\nvkey " + k + "\norigin other\nqpd 24\ncontact x\n"))
	f.Add([]byte("logs/v0\nvkey " + k + "\nqpd 024\ncontact x\n"))
	f.Add([]byte("logs/v0\nvkey " + k + "\nqpd 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		logs, err := parseLogList(b)
		if err != nil {
			if logs != nil {
				t.Fatal("logs returned with an error")
			}
			return
		}
		var out strings.Builder
		out.WriteString("logs/v0\n")
		seen := map[string]bool{}
		for _, l := range logs {
			if l.Origin == "" || l.Contact == "" || l.QPD < 1 || l.QPD >= 1<<31 || seen[l.Origin] {
				t.Fatalf("accepted %+v", l)
			}
			seen[l.Origin] = true
			fmt.Fprintf(&out, "vkey %s\norigin %s\nqpd %d\ncontact %s\n", l.Key, l.Origin, l.QPD, l.Contact)
		}
		again, err := parseLogList([]byte(out.String()))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(logs) {
			t.Fatalf("%q parsed as %+v, written back as %q: %+v, %v", b, logs, out.String(), again, err)
		}
	})
}
