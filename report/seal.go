package report

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Files of a report directory.
const (
	JSONFile = "report.json"
	HTMLFile = "report.html"
	PDFFile  = "report.pdf"
	SigFile  = "report.sig"
)

// sealHeader opens the text of a seal.
const sealHeader = "stele-report-seal/v1\n"

// Seal signs the report files present in dir (report.json and report.html
// are required, report.pdf optional) and writes dir/report.sig: a C2SP
// signed note whose text is
//
//	stele-report-seal/v1
//	sha256 <hex> report.json
//	sha256 <hex> report.html
//	[sha256 <hex> report.pdf]
//
// signed by the operator's Ed25519 signed-note key.
func Seal(dir string, signer note.Signer) error {
	var text strings.Builder
	text.WriteString(sealHeader)
	for _, name := range []string{JSONFile, HTMLFile, PDFFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && name == PDFFile {
			continue
		}
		if err != nil {
			return fmt.Errorf("sealing the report: %w", err)
		}
		fmt.Fprintf(&text, "sha256 %s %s\n", Digest(b), name)
	}
	signed, err := note.Sign(&note.Note{Text: text.String()}, signer)
	if err != nil {
		return fmt.Errorf("signing the report: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, SigFile), signed, 0o644)
}

// VerifyDir checks dir/report.sig with the operator's verifier and every
// file it names against its digest, and returns the names checked. It
// refuses a seal that does not name report.json and report.html, any file
// whose bytes changed, and a report file the seal does not name.
func VerifyDir(dir string, v note.Verifier) ([]string, error) {
	sig, err := os.ReadFile(filepath.Join(dir, SigFile))
	if err != nil {
		return nil, fmt.Errorf("reading the seal: %w", err)
	}
	n, err := note.Open(sig, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("%s: the operator's signature does not verify with key %s: %w", SigFile, v.Name(), err)
	}
	lines, err := parseSeal(n.Text)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range lines {
		b, err := os.ReadFile(filepath.Join(dir, l.name))
		if err != nil {
			return nil, fmt.Errorf("%s is sealed but cannot be read: %w", l.name, err)
		}
		if got := Digest(b); got != l.digest {
			return nil, fmt.Errorf("%s was changed after it was sealed: its SHA-256 is %s, the seal says %s", l.name, got, l.digest)
		}
		names = append(names, l.name)
	}
	// A report file the seal does not name (a PDF dropped into a directory
	// sealed without one) would be read as part of the sealed report.
	for _, name := range []string{JSONFile, HTMLFile, PDFFile} {
		if slices.Contains(names, name) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is in the report directory but the seal does not cover it: it was added after the report was sealed; remove it", name)
		}
	}
	// The page must show the twin it was rendered with.
	twin, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	page, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if !bytes.Contains(page, []byte(Digest(twin))) {
		return nil, fmt.Errorf("%s does not show the SHA-256 of %s", HTMLFile, JSONFile)
	}
	return names, nil
}

type sealLine struct{ digest, name string }

// parseSeal reads the text of a seal strictly: the header, then one
// "sha256 <64 hex> <file>" line per file, each file at most once, among
// them report.json and report.html.
func parseSeal(text string) ([]sealLine, error) {
	body, ok := strings.CutPrefix(text, sealHeader)
	if !ok {
		return nil, fmt.Errorf("%s is not a stele report seal (want first line %q)", SigFile, strings.TrimSpace(sealHeader))
	}
	var out []sealLine
	var names []string
	for line := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
		f := strings.Split(line, " ")
		if len(f) != 3 || f[0] != "sha256" || len(f[1]) != 64 || strings.Trim(f[1], "0123456789abcdef") != "" ||
			!slices.Contains([]string{JSONFile, HTMLFile, PDFFile}, f[2]) || slices.Contains(names, f[2]) {
			return nil, fmt.Errorf("%s: malformed line %q", SigFile, line)
		}
		out = append(out, sealLine{f[1], f[2]})
		names = append(names, f[2])
	}
	if !slices.Contains(names, JSONFile) || !slices.Contains(names, HTMLFile) {
		return nil, fmt.Errorf("%s does not cover both %s and %s", SigFile, JSONFile, HTMLFile)
	}
	return out, nil
}
