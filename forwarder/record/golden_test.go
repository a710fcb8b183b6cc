package record

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/identity"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// goldenRecord is one of the identity package's golden records with the
// view Normalize derives from it (a fresh one per call of goldenRecords,
// for the caller to change).
type goldenRecord struct {
	name, format string
	raw          []byte
	ev           *stelev1.IdentityEvent
}

// goldenRecords reads and normalises every golden record the identity
// package has; a record its normaliser refuses is left out.
func goldenRecords(tb testing.TB) []goldenRecord {
	tb.Helper()
	names, err := filepath.Glob("../../identity/testdata/golden/*/*.json")
	if err != nil {
		tb.Fatal(err)
	}
	var out []goldenRecord
	for _, name := range names {
		if strings.HasSuffix(name, ".golden.json") {
			continue
		}
		raw, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		format := filepath.Base(filepath.Dir(name))
		ev, err := identity.Normalize(format, raw)
		if err != nil {
			continue
		}
		out = append(out, goldenRecord{name: name, format: format, raw: raw, ev: ev})
	}
	return out
}
