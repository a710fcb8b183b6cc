//go:build !unix

package client

import "context"

// lockFile is a no-op where flock is unavailable: there, two processes
// must not update the same log's state in the same directory at once
// (StateStore documents the lock it takes elsewhere).
func lockFile(ctx context.Context, path string) (func(), error) { return func() {}, nil }
