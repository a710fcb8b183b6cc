package report

import (
	"strings"
	"testing"
)

const d64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseSeal(t *testing.T) {
	good := []string{
		sealHeader + "sha256 " + d64 + " report.json\nsha256 " + d64 + " report.html\n",
		sealHeader + "sha256 " + d64 + " report.html\nsha256 " + d64 + " report.json\nsha256 " + d64 + " report.pdf\n",
	}
	for _, s := range good {
		if ls, err := parseSeal(s); err != nil || len(ls) < 2 {
			t.Errorf("parseSeal(%q) = %v, %v", s, ls, err)
		}
	}
	bad := map[string]string{
		"no header":       "sha256 " + d64 + " report.json\n",
		"json only":       sealHeader + "sha256 " + d64 + " report.json\n",
		"twice":           sealHeader + "sha256 " + d64 + " report.json\nsha256 " + d64 + " report.json\nsha256 " + d64 + " report.html\n",
		"other file":      sealHeader + "sha256 " + d64 + " report.json\nsha256 " + d64 + " report.html\nsha256 " + d64 + " ../etc/passwd\n",
		"upper hex":       sealHeader + "sha256 " + strings.ToUpper(d64) + " report.json\nsha256 " + d64 + " report.html\n",
		"short digest":    sealHeader + "sha256 abcd report.json\nsha256 " + d64 + " report.html\n",
		"other algorithm": sealHeader + "sha512 " + d64 + " report.json\nsha256 " + d64 + " report.html\n",
		"two spaces":      sealHeader + "sha256  " + d64 + " report.json\nsha256 " + d64 + " report.html\n",
		"blank line":      sealHeader + "sha256 " + d64 + " report.json\n\nsha256 " + d64 + " report.html\n",
		"empty":           "",
	}
	for name, s := range bad {
		if ls, err := parseSeal(s); err == nil {
			t.Errorf("%s: parseSeal(%q) accepted: %v", name, s, ls)
		}
	}
}

// FuzzParseSeal: parseSeal never panics, and what it accepts names only
// report files, each once, with lowercase 64-hex digests.
func FuzzParseSeal(f *testing.F) {
	f.Add(sealHeader + "sha256 " + d64 + " report.json\nsha256 " + d64 + " report.html\n")
	f.Add(sealHeader + "sha256 " + d64 + " report.pdf\n")
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseSeal(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, l := range ls {
			if seen[l.name] || (l.name != JSONFile && l.name != HTMLFile && l.name != PDFFile) || len(l.digest) != 64 {
				t.Fatalf("accepted %q as %v", s, ls)
			}
			seen[l.name] = true
		}
		if !seen[JSONFile] || !seen[HTMLFile] {
			t.Fatalf("accepted %q without both files", s)
		}
	})
}
