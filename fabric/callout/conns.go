package callout

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/schema"
)

// Connection caps of one device and one user, the WebSocket gateway's
// (gateway.MaxConnsPerDevice, MaxConnsPerUser); see Config.
const (
	DefaultMaxConnsPerDevice = 4
	DefaultMaxConnsPerUser   = 16
)

var (
	errDeviceConns = schema.Errorf(schema.CodeRateLimited, "too many open connections for this device; close one first")
	errUserConns   = schema.Errorf(schema.CodeRateLimited, "too many open connections for this user; close one first")
)

// connKey names one client connection: its server and client id.
type connKey struct {
	server string
	cid    uint64
}

// connOwner is whose a connection is, and until when its user JWT lasts.
type connOwner struct {
	userID, deviceID string
	expires          time.Time
}

// connTable counts the connections the responder admitted that the server
// has not reported closed. Each server sends
// $SYS.ACCOUNT.<account>.DISCONNECT for every closed client connection;
// entries past their JWT's expiry are dropped too, in case an event was
// missed. A table is safe for concurrent use.
type connTable struct {
	mu     sync.Mutex
	conns  map[connKey]connOwner           // guarded by mu
	byUser map[string]map[connKey]struct{} // guarded by mu
}

func newConnTable() *connTable {
	return &connTable{conns: map[connKey]connOwner{}, byUser: map[string]map[connKey]struct{}{}}
}

// admit records k for o unless o's device holds maxDevice connections or
// its user maxUser; it returns the rate_limited error then. Concurrent
// handshakes are counted as they are admitted, so a burst cannot overshoot.
func (t *connTable) admit(k connKey, o connOwner, maxDevice, maxUser int) *schema.Error {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := t.byUser[o.userID]
	device := 0
	for ck := range keys {
		c := t.conns[ck]
		if !c.expires.After(now) {
			t.dropLocked(ck)
			continue
		}
		if c.deviceID == o.deviceID {
			device++
		}
	}
	if len(t.byUser[o.userID]) >= maxUser {
		return errUserConns
	}
	if device >= maxDevice {
		return errDeviceConns
	}
	if t.byUser[o.userID] == nil {
		t.byUser[o.userID] = map[connKey]struct{}{}
	}
	t.byUser[o.userID][k] = struct{}{}
	t.conns[k] = o
	return nil
}

// drop forgets k.
func (t *connTable) drop(k connKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(k)
}

// dropLocked forgets k. mu must be held.
func (t *connTable) dropLocked(k connKey) {
	o, ok := t.conns[k]
	if !ok {
		return
	}
	delete(t.conns, k)
	if keys := t.byUser[o.userID]; keys != nil {
		delete(keys, k)
		if len(keys) == 0 {
			delete(t.byUser, o.userID)
		}
	}
}

// disconnectEvent is the part of the server's client disconnect advisory
// the table needs.
type disconnectEvent struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Client struct {
		ID uint64 `json:"id"`
	} `json:"client"`
}

// disconnected handles a DISCONNECT advisory.
func (r *Responder) disconnected(m *nats.Msg) {
	var ev disconnectEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		r.log.Warn("auth callout: undecodable disconnect advisory", "err", err)
		return
	}
	r.table.drop(connKey{server: ev.Server.ID, cid: ev.Client.ID})
}
