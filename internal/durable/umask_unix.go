//go:build unix

package durable

import "syscall"

// RestrictUmask sets the process's umask to 077, so that every file and
// directory it creates afterwards, through any library (Pebble, Tessera),
// grants nothing to group or others. The binaries call it first thing
// (docs/decisions.md, "File permissions").
func RestrictUmask() { syscall.Umask(0o077) }
