//go:build !unix

package durable

// RestrictUmask does nothing where there is no umask.
func RestrictUmask() {}
