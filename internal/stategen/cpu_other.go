//go:build !unix

package stategen

import "time"

// CPUTime is zero where the process's CPU time cannot be read.
func CPUTime() time.Duration { return 0 }
