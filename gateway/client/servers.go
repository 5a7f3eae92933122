package client

import (
	"errors"
	"net"
	"net/url"
	"sync/atomic"
	"time"
)

// dialTimeout bounds connecting to one gateway, so a gateway in a lost city
// (no answer at all, not even a refusal) costs at most this long before the
// next one is tried.
const dialTimeout = 5 * time.Second

// servers is the ordered list of gateways a client may use and the one in
// use. It is safe for concurrent use.
type servers struct {
	urls []*url.URL
	cur  atomic.Int64 // index into urls of the gateway in use
}

// newServers checks the base URLs: first, then the rest in order, each once.
func newServers(first string, rest []string) (*servers, error) {
	s := &servers{}
	seen := map[string]bool{}
	for _, raw := range append([]string{first}, rest...) {
		if raw == "" && len(s.urls) > 0 {
			continue
		}
		u, err := parseServer(raw)
		if err != nil {
			return nil, err
		}
		if !seen[u.String()] {
			seen[u.String()] = true
			s.urls = append(s.urls, u)
		}
	}
	if len(s.urls) == 0 {
		return nil, errors.New("client: config needs Server")
	}
	return s, nil
}

// current returns the gateway in use and its index, for failover.
func (s *servers) current() (int, *url.URL) {
	i := int(s.cur.Load())
	return i, s.urls[i]
}

// failover moves on to the gateway after i, unless another request has
// already moved on from i. It reports whether there is another gateway.
func (s *servers) failover(i int) bool {
	if len(s.urls) < 2 {
		return false
	}
	s.cur.CompareAndSwap(int64(i), int64((i+1)%len(s.urls)))
	return true
}

// count is the number of gateways.
func (s *servers) count() int { return len(s.urls) }

// dialFailed reports whether err is a failure to connect at all: the
// request was never sent, so repeating it elsewhere cannot apply it twice.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// newDialer returns the net.Dialer the client's connections use.
func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
}
