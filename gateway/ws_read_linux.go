package gateway

import "syscall"

// canWaitReadable reports whether waitReadable is implemented here.
const canWaitReadable = true

// waitReadable blocks until the socket has bytes to read (or an error or
// end of stream to report), without reading them, or until its read
// deadline passes or it is closed.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}
