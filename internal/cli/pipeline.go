package cli

import "context"

// ordered runs do on each value from in, at most n at once, and calls
// report with each value and its result in the order the values came:
// submit and import keep several batches in flight yet print in file order.
// Memory is bounded: at most n values are being worked on and n more wait
// to be reported. When ctx ends, no new work starts; what started is still
// reported. in must be closed by its sender (which should also watch ctx).
func ordered[T, R any](ctx context.Context, n int, in <-chan T, do func(T) R, report func(T, R)) {
	type slot struct {
		v    T
		r    R
		done chan struct{}
	}
	queue := make(chan *slot, n)
	go func() {
		defer close(queue)
		sem := make(chan struct{}, n)
		for v := range in {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s := &slot{v: v, done: make(chan struct{})}
			go func() {
				defer func() { <-sem; close(s.done) }()
				s.r = do(s.v)
			}()
			queue <- s
		}
	}()
	for s := range queue {
		<-s.done
		report(s.v, s.r)
	}
}
