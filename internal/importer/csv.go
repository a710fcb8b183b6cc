package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// csvReader reads a Log Analytics / Sentinel CSV export: a header row, then
// one record per row.
type csvReader struct {
	r      *csv.Reader
	header []string
	skip   int64
}

// isCSVHeader tells a Log Analytics CSV export from its first line: comma
// separated column names, one of them TimeGenerated (the portal writes
// "TimeGenerated [UTC]").
func isCSVHeader(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	if !bytes.Contains(line, []byte(",")) {
		return false
	}
	for _, f := range strings.Split(string(bytes.TrimRight(line, "\r")), ",") {
		f = strings.Trim(strings.TrimSpace(f), `"`)
		f = strings.TrimSuffix(strings.TrimSuffix(f, " [UTC]"), " [Local Time]")
		if strings.EqualFold(f, "TimeGenerated") {
			return true
		}
	}
	return false
}

func newCSVReader(br *bufio.Reader, skip int64) (*csvReader, error) {
	r := csv.NewReader(br)
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return &csvReader{r: r, skip: skip}, nil
		}
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		if !utf8.ValidString(h) {
			return nil, fmt.Errorf("CSV header: column %d's name is not UTF-8", i+1)
		}
		if h == "" {
			return nil, fmt.Errorf("CSV header: column %d has no name", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("CSV header: column %q appears twice: a record cannot have a key twice", h)
		}
		seen[h] = true
	}
	r.FieldsPerRecord = len(header)
	return &csvReader{r: r, header: header, skip: skip}, nil
}

func (c *csvReader) offset() int64 { return c.skip + c.r.InputOffset() }

// nextCSV reads one row. A row with the wrong number of cells or a cell
// that is not UTF-8 is a record error; reading goes on. A quoting error
// (a bare quote, a quote left open) makes the rest unreadable.
func (r *Reader) nextCSV() (Record, error) {
	c := r.csv
	if c.header == nil {
		return Record{}, io.EOF
	}
	for {
		start := c.offset()
		row, err := c.r.Read()
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		var pe *csv.ParseError
		if err != nil && !(errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount)) {
			return Record{}, &StopError{Offset: c.offset(), Records: r.n, Err: fmt.Errorf("CSV: %w", err)}
		}
		if len(row) == 1 && row[0] == "" && err == nil {
			continue
		}
		r.n++
		// The row starts after the previous row's line ending.
		rec := Record{N: r.n, Offset: start}
		if err != nil {
			rec.Err = fmt.Errorf("CSV row has %d cells, the header %d", len(row), len(c.header))
			return rec, nil
		}
		raw, err := rowJSON(c.header, row)
		if err != nil {
			rec.Err = err
			return rec, nil
		}
		rec.Raw = raw
		return rec, nil
	}
}

// rowJSON renders a row as a JSON object of column name to cell text, in
// column order, with HTML characters left as they are.
func rowJSON(header, row []string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, h := range header {
		if !utf8.ValidString(row[i]) {
			return nil, fmt.Errorf("CSV cell %q is not UTF-8 text", h)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		for j, s := range []string{h, row[i]} {
			if err := enc.Encode(s); err != nil {
				return nil, err
			}
			b.Truncate(b.Len() - 1) // Encode's newline
			if j == 0 {
				b.WriteByte(':')
			}
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
