//go:build unix

package stategen

import (
	"syscall"
	"time"
)

// CPUTime is the process's user+system CPU time: on a shared machine it
// measures a benchmark's work, where wall time also measures the
// neighbours. Zero where it cannot be read.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
