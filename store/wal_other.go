//go:build !linux

package store

import "os"

// fdatasync flushes f; outside Linux that is a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }
