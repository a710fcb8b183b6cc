package cli

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on standard error while stele
// import runs, only when standard error is a terminal (never in a pipe, a
// file or a test; see isTerminal). The counters are updated by the reading and submitting
// goroutines; a ticker redraws the line.
type progress struct {
	bytes   atomic.Int64 // bytes read of the current file (compressed, as on disk)
	records atomic.Int64 // records accounted for, all files

	mu     sync.Mutex
	w      io.Writer // nil when not drawing
	name   string
	size   int64 // of the current file; 0 when unknown (standard input)
	began  time.Time
	drawn  bool
	stopCh chan struct{}
}

// start begins drawing on w if it is a terminal; the returned func stops
// and erases the bar.
func (p *progress) start(w io.Writer) func() {
	p.start0()
	if !isTerminal(w) {
		return func() {}
	}
	p.mu.Lock()
	p.w = w
	p.stopCh = make(chan struct{})
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stopCh:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return func() {
		close(p.stopCh)
		<-done
		p.clear()
	}
}

func (p *progress) start0() {
	p.mu.Lock()
	p.began = time.Now()
	p.mu.Unlock()
}

// file starts counting a new file.
func (p *progress) file(name string, size int64) {
	p.mu.Lock()
	p.name, p.size = name, size
	p.bytes.Store(0)
	p.mu.Unlock()
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return
	}
	line := progressLine(p.name, p.bytes.Load(), p.size, p.records.Load(), time.Since(p.began))
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	p.drawn = true
}

// clear erases the bar (it comes back at the next tick).
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.w != nil && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// println writes a line to w without tearing the bar.
func (p *progress) println(w io.Writer, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(w, s)
}

// progressLine renders the bar: the file, a 20-cell bar and percentage when
// the size is known, bytes, records and the rate.
func progressLine(name string, done, size, records int64, elapsed time.Duration) string {
	const cells = 20
	if len(name) > 32 {
		name = "..." + name[len(name)-29:]
	}
	rate := float64(records) / max(elapsed.Seconds(), 1e-3)
	if size <= 0 {
		return fmt.Sprintf("%s  %s  %d records  %.0f events/s", name, mb(done), records, rate)
	}
	frac := min(float64(done)/float64(size), 1)
	full := int(frac * cells)
	bar := make([]byte, cells)
	for i := range bar {
		bar[i] = ' '
		if i < full {
			bar[i] = '#'
		}
	}
	return fmt.Sprintf("%s [%s] %3.0f%%  %s/%s  %d records  %.0f events/s", name, bar, frac*100, mb(done), mb(size), records, rate)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
