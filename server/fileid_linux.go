package server

import (
	"fmt"
	"os"
	"syscall"
)

// fileIdentity names the file behind fi beyond its size and modification
// time: its device, inode and status-change time (which no one can set
// back), where the system reports them.
func fileIdentity(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d.%d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
}
