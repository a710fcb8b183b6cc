package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// laState is where a Log Analytics query response is being read.
type laState struct {
	depth int      // 0 outside, 1 in the top object, 2 in tables, 3 in a table, 4 in its rows
	cols  []string // the current table's column names
	table int
}

// nextLATable reads a Log Analytics query API response token by token, so
// memory stays bounded by one row: the response object's keys up to
// "tables", each table's keys, its "columns" (which the API writes before
// "rows") and each row.
func (r *Reader) nextLATable() (Record, error) {
	if r.la == nil {
		r.la = &laState{}
	}
	la := r.la
	for {
		r.tap.mark(r.dec.InputOffset())
		switch la.depth {
		case 4: // in rows
			if r.dec.More() {
				return r.laRow()
			}
			if err := r.expect(']'); err != nil {
				return Record{}, err
			}
			la.depth = 3
		case 0:
			t, err := r.dec.Token()
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			if err != nil {
				return Record{}, r.stopToken(err)
			}
			r.top++
			if t != json.Delim('{') {
				return Record{}, r.stopAt(r.dec.InputOffset()-1, fmt.Errorf("top-level value %d is not a JSON object (format %s)", r.top, LATables))
			}
			la.depth = 1
		case 1, 3: // the keys of the response or of a table
			if !r.dec.More() {
				if err := r.expect('}'); err != nil {
					return Record{}, err
				}
				la.depth--
				continue
			}
			t, err := r.dec.Token()
			if err != nil {
				return Record{}, r.stopToken(err)
			}
			key, _ := t.(string)
			switch {
			case la.depth == 1 && key == "tables":
				if err := r.expect('['); err != nil {
					return Record{}, err
				}
				la.depth = 2
			case la.depth == 3 && key == "columns":
				var cols []struct {
					Name string `json:"name"`
				}
				if err := r.dec.Decode(&cols); err != nil {
					return Record{}, r.stop(err)
				}
				la.cols = la.cols[:0]
				seen := map[string]bool{}
				for _, c := range cols {
					if c.Name == "" || seen[c.Name] {
						return Record{}, r.stopAt(r.dec.InputOffset(), fmt.Errorf("table %d: a column with no name, or %q twice: a record cannot have a key twice", la.table, c.Name))
					}
					seen[c.Name] = true
					la.cols = append(la.cols, c.Name)
				}
			case la.depth == 3 && key == "rows":
				if err := r.expect('['); err != nil {
					return Record{}, err
				}
				la.depth = 4
				if la.cols == nil && r.dec.More() {
					return Record{}, r.stopAt(r.dec.InputOffset(), fmt.Errorf("table %d has rows before its columns: the cells cannot be named", la.table))
				}
			default:
				if err := r.skipJSONValue(); err != nil {
					return Record{}, err
				}
			}
		case 2: // in tables
			if !r.dec.More() {
				if err := r.expect(']'); err != nil {
					return Record{}, err
				}
				la.depth = 1
				continue
			}
			if err := r.expect('{'); err != nil {
				return Record{}, err
			}
			la.table++
			la.cols = nil
			la.depth = 3
		}
	}
}

// laRow reads one row and renders it as an object of column name to cell.
func (r *Reader) laRow() (Record, error) {
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return Record{}, r.stop(err)
	}
	r.n++
	rec := Record{N: r.n, Offset: r.skip + r.dec.InputOffset() - int64(len(raw))}
	var cells []json.RawMessage
	if err := json.Unmarshal(raw, &cells); err != nil {
		rec.Err = fmt.Errorf("row is not a JSON array: %v", notObjectOrArray(raw))
		return rec, nil
	}
	if len(cells) != len(r.la.cols) {
		rec.Err = fmt.Errorf("row has %d cells, the table %d columns", len(cells), len(r.la.cols))
		return rec, nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range r.la.cols {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		b.Write(name)
		b.WriteByte(':')
		b.Write(cells[i])
	}
	b.WriteByte('}')
	rec.Raw = b.Bytes()
	return rec, nil
}

func notObjectOrArray(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	return notObject(b).Error()
}
