package server

import (
	"fmt"
	"syscall"
)

// diskSpace refuses a write while the file system holding the data
// directory has less than the configured reserve free. Pebble treats a
// failed write-ahead-log write as fatal, so a full disk must be seen before
// the stores are asked to write; the reserve also leaves room for their
// flushes and compactions and for Tessera's tiles.
func (a *admitter) diskSpace() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.DataDir, &st); err != nil {
		return fmt.Errorf("checking free disk space of %s: %w", a.cfg.DataDir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	reserve := uint64(a.cfg.MinFreeDiskMiB) << 20
	if free < reserve {
		if a.diskFull.CompareAndSwap(false, true) {
			a.cfg.Logger.Error("refusing appends: the data directory's disk is nearly full", "data_dir", a.cfg.DataDir, "free_mib", free>>20, "reserve_mib", a.cfg.MinFreeDiskMiB)
		}
		return fmt.Errorf("the data directory's disk has %d MiB free, below the reserve of %d MiB (min_free_disk_mib): nothing was written; free disk space and retry, the server resumes by itself", free>>20, a.cfg.MinFreeDiskMiB)
	}
	if a.diskFull.CompareAndSwap(true, false) {
		a.cfg.Logger.Info("accepting appends again: disk space is back above the reserve", "free_mib", free>>20)
	}
	return nil
}
