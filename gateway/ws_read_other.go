//go:build !linux

package gateway

import (
	"errors"
	"syscall"
)

// canWaitReadable reports whether waitReadable is implemented here.
const canWaitReadable = false

// waitReadable is not implemented on this platform; readers wait inside
// the websocket library.
func waitReadable(syscall.RawConn) error { return errors.ErrUnsupported }
