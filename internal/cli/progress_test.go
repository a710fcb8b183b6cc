package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name                string
		done, size, records int64
		elapsed             time.Duration
		want                string
	}{
		{"export.json", 50e6, 200e6, 10000, 2 * time.Second,
			"export.json [#####               ]  25%  50.0 MB/200.0 MB  10000 records  5000 events/s"},
		{"export.json", 300e6, 200e6, 10, time.Second, // over the size (a file still growing): 100%
			"export.json [####################] 100%  300.0 MB/200.0 MB  10 records  10 events/s"},
		{"-", 1.5e6, 0, 300, 3 * time.Second,
			"-  1.5 MB  300 records  100 events/s"},
		{"tenantId=11111111/y=2024/m=01/d=02/h=03/m=00/PT1H.json", 0, 10, 0, 0,
			"...m=01/d=02/h=03/m=00/PT1H.json [                    ]   0%  0.0 MB/0.0 MB  0 records  0 events/s"},
	} {
		if got := progressLine(tc.name, tc.done, tc.size, tc.records, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%q, …)\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// A progress bar is never drawn on a writer that is not a terminal, so
// pipes, files and tests get only the summary.
func TestProgressNotOnPipes(t *testing.T) {
	var buf bytes.Buffer
	var p progress
	stop := p.start(&buf)
	p.records.Add(5)
	time.Sleep(300 * time.Millisecond)
	p.println(&buf, "line")
	stop()
	if buf.String() != "line\n" {
		t.Fatalf("wrote %q, want only the line", buf.String())
	}
}
