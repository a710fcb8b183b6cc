package server

import (
	"os"
	"time"
)

// holdBeforeTombstone, set from $STELE_TEST_HOLD_BEFORE_TOMBSTONE (a Go
// duration), makes EraseEvent wait between appending the erasure event and
// writing the tombstone, so a crash test can kill the server there. Unset
// in production.
var holdBeforeTombstone = testHold("STELE_TEST_HOLD_BEFORE_TOMBSTONE")

func testHold(env string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(env))
	if err != nil || d <= 0 {
		return 0
	}
	return d
}
