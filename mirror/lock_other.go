//go:build !unix

package mirror

// lockDir is a no-op where flock is unavailable: there, two mirrors must
// not write the same directory at once.
func lockDir(dir string) (func(), error) { return func() {}, nil }
