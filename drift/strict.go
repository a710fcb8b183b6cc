package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// checkJSON rejects what encoding/json would accept silently: invalid
// UTF-8 is replaced by it, a key given twice keeps the last value, and
// keys match case-insensitively. It returns the error naming the first
// problem, or nil.
func checkJSON(b []byte) error {
	if !json.Valid(b) {
		// Let the decoder name the position.
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&v); err != nil {
			return err
		}
		return errors.New("trailing data after the JSON value")
	}
	if !validUTF8(b) {
		return errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkDup(dec, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func validUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// walkDup reads one value and rejects an object holding a key twice, or
// two keys that differ only in case (encoding/json would match either to
// the same field).
func walkDup(dec *json.Decoder, path string) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k := kt.(string)
			fold := strings.ToLower(k)
			if prev, ok := seen[fold]; ok {
				if prev == k {
					return fmt.Errorf("%s: key %q appears twice", where(path), k)
				}
				return fmt.Errorf("%s: keys %q and %q differ only in case", where(path), prev, k)
			}
			seen[fold] = k
			if err := walkDup(dec, path+"."+k); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := walkDup(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

func where(path string) string {
	if path == "" {
		return "top level"
	}
	return strings.TrimPrefix(path, ".")
}
