package audit

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadInto: a body is read whole into the caller's buffer, reusing its
// capacity, with or without a known length; one larger than any entry
// bundle is refused.
func TestReadInto(t *testing.T) {
	body := bytes.Repeat([]byte("stele"), 7000)
	buf := make([]byte, 0, 64)
	for _, tc := range []struct {
		name string
		r    io.Reader
		n    int64
	}{
		{"known length", bytes.NewReader(body), int64(len(body))},
		{"unknown length", bytes.NewReader(body), -1},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(body)), -1},
	} {
		got, err := readInto(buf[:0], tc.r, tc.n)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: %d bytes, %v", tc.name, len(got), err)
		}
		buf = got
	}
	again, err := readInto(buf[:0], bytes.NewReader(body[:100]), 100)
	if err != nil || !bytes.Equal(again, body[:100]) || &again[0] != &buf[0] {
		t.Fatalf("a smaller body did not reuse the buffer: %v", err)
	}
	if _, err := readInto(nil, strings.NewReader(""), maxResource+1); err == nil {
		t.Fatal("a declared length above the largest entry bundle was accepted")
	}
	if _, err := readInto(nil, io.LimitReader(zeros{}, maxResource+1), -1); err == nil {
		t.Fatal("an undeclared body above the largest entry bundle was accepted")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
