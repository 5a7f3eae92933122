//go:build unix

package client

import (
	"os"
	"syscall"
)

// lockFileExclusive takes an exclusive flock on f, waiting for it; closing
// f releases it.
func lockFileExclusive(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
