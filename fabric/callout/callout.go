// Package callout is Mayfly's NATS auth callout responder (ADR-26): it lets
// NATS-native clients connect straight to the NATS servers with their Mayfly
// access token and gives each connection a short-lived user JWT whose
// permissions allow only that user's own subjects.
//
// A client connects with the access token as its NATS token
// (nats.Token(accessToken)) and its inbox prefix set to "_INBOX_<user id>"
// (nats.CustomInboxPrefix), and calls the operations of fabric/natsapi on
// svc.<user id>.<device id>.<operation>. The server asks the responder on
// $SYS.REQ.USER.AUTH; the responder checks the token exactly as the HTTP API
// does (signature, algorithm, expiry, device still active in the token's
// generation) and answers with a user JWT placed in the MAYFLY account that
// expires with the access token. Unknown, expired or revoked tokens are
// refused. When a device is revoked (fab.revoked.<user>), every responder
// disconnects the NATS connections it authorized for that device through the
// system account's KICK request.
//
// A [Responder] is safe for concurrent use; Stop ends its subscriptions.
package callout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema"
)

// Subject is where NATS servers send authorization requests.
const Subject = subject.AuthCallout

// queue spreads requests over every responder of a deployment.
const queue = "mayfly-callout"

// Authenticator checks an access token; fabric/account.Service implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, accessToken string) (account.Principal, error)
}

// Config configures a Responder. Zero values take the documented defaults.
type Config struct {
	Auth     *nats.Conn    // required: connection as node.AuthUser, in the callout account
	Service  *nats.Conn    // required: service connection; revocations arrive on it
	Sys      *nats.Conn    // connection as node.SysUser for kicks; nil disables kicks
	Issuer   nkeys.KeyPair // required: account key named as issuer in the server config
	Accounts Authenticator // required
	// Account is the account clients are placed in; default node.AppAccount.
	Account string
	// MaxTTL caps a user JWT's lifetime below the access token's; default 15m.
	MaxTTL time.Duration
	Logger *slog.Logger // default discards
	// MaxConnsPerDevice and MaxConnsPerUser cap the connections one device
	// and one user may hold at once (the WebSocket gateway's caps, counted
	// apart from them); defaults 4 and 16. One more is refused with
	// rate_limited. The count needs Sys (it follows the servers' disconnect
	// advisories); without Sys connections are not capped.
	MaxConnsPerDevice int
	MaxConnsPerUser   int
}

// Responder answers auth callout requests.
type Responder struct {
	cfg  Config
	log  *slog.Logger
	subs []*nats.Subscription

	mu    sync.Mutex
	conns map[string][]clientRef // device id -> connections we authorized; guarded by mu

	// table counts live connections for the caps (conns.go); nil without Sys.
	table *connTable
}

// clientRef names one client connection on one server.
type clientRef struct {
	server     string
	cid        uint64
	generation int // of the device session the connection was admitted with
	expires    time.Time
}

// Start subscribes the responder.
func Start(cfg Config) (*Responder, error) {
	if cfg.Auth == nil || cfg.Service == nil || cfg.Issuer == nil || cfg.Accounts == nil {
		return nil, errors.New("callout: config needs Auth, Service, Issuer and Accounts")
	}
	if cfg.Account == "" {
		cfg.Account = node.AppAccount
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConnsPerDevice <= 0 {
		cfg.MaxConnsPerDevice = DefaultMaxConnsPerDevice
	}
	if cfg.MaxConnsPerUser <= 0 {
		cfg.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	r := &Responder{cfg: cfg, log: cfg.Logger, conns: map[string][]clientRef{}}
	if cfg.Sys != nil {
		// Subscribed before the first authorization, so no close is missed.
		r.table = newConnTable()
		sub, err := cfg.Sys.Subscribe(subject.AccountDisconnect(cfg.Account), r.disconnected)
		if err != nil {
			return nil, fmt.Errorf("callout: subscribe disconnect advisories: %w", err)
		}
		r.subs = append(r.subs, sub)
		if err := cfg.Sys.Flush(); err != nil {
			r.Stop()
			return nil, fmt.Errorf("callout: subscribe disconnect advisories: %w", err)
		}
	}
	sub, err := cfg.Auth.QueueSubscribe(Subject, queue, r.handle)
	if err != nil {
		return nil, fmt.Errorf("callout: subscribe: %w", err)
	}
	r.subs = append(r.subs, sub)
	sub, err = cfg.Service.Subscribe(subject.RevokedAll, r.revoked)
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("callout: subscribe revocations: %w", err)
	}
	r.subs = append(r.subs, sub)
	return r, nil
}

// Stop unsubscribes. In-flight requests finish.
func (r *Responder) Stop() {
	for _, s := range r.subs {
		s.Unsubscribe()
	}
}

// Permissions returns what a native client of deviceID of userID may do:
// publish only requests to its own services (svc.<user>.<device>.>, see
// fabric/natsapi), subscribe only to its own user's deliveries
// (dlv.mbx.*.<user>), events (evt.<user>) and its own inbox
// (_INBOX_<user>.>). No JetStream API, no other user's or device's subjects.
// Every subject comes from fabric/subject's builders; a malformed id
// yields permissions that allow nothing.
func Permissions(userID, deviceID string) jwt.Permissions {
	var p jwt.Permissions
	svc, err1 := subject.ServiceOf(userID, deviceID)
	dlv, err2 := subject.DeliveryAnyPartition(userID)
	evt, err3 := subject.Events(userID)
	inbox, err4 := subject.InboxAll(userID)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		p.Pub.Deny.Add(">")
		p.Sub.Deny.Add(">")
		return p
	}
	p.Pub.Allow.Add(svc)
	p.Sub.Allow.Add(dlv, evt, inbox)
	return p
}

// InboxPrefix is the inbox prefix a native client of userID must use.
func InboxPrefix(userID string) string { return subject.Inbox(userID) }

func (r *Responder) handle(m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		r.log.Warn("auth callout: undecodable request", "err", err)
		return // the server times out the connection attempt
	}
	ujwt, p, err := r.authorize(req)
	if err == nil && r.table != nil {
		k := connKey{server: req.Server.ID, cid: req.ClientInformation.ID}
		if e := r.table.admit(k, connOwner{userID: p.UserID, deviceID: p.DeviceID, expires: r.expiry(p)}, r.cfg.MaxConnsPerDevice, r.cfg.MaxConnsPerUser); e != nil {
			ujwt, err = "", e
		}
	}
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	if err != nil {
		resp.Error = string(schema.AsError(err).Code)
	} else {
		resp.Jwt = ujwt
	}
	tok, encErr := resp.Encode(r.cfg.Issuer)
	if encErr != nil {
		r.log.Error("auth callout: encode response", "err", encErr)
		return
	}
	if err := m.Respond([]byte(tok)); err != nil {
		r.log.Warn("auth callout: respond", "err", err)
		return
	}
	if err == nil {
		r.remember(p.DeviceID, clientRef{server: req.Server.ID, cid: req.ClientInformation.ID, generation: p.Generation, expires: p.ExpiresAt})
		r.log.Debug("native client authorized", "user_id", p.UserID, "device_id", p.DeviceID, "cid", req.ClientInformation.ID)
	}
}

// authorize checks the token in req and returns the user JWT.
func (r *Responder) authorize(req *jwt.AuthorizationRequestClaims) (string, account.Principal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := r.cfg.Accounts.Authenticate(ctx, req.ConnectOptions.Token)
	if err != nil {
		return "", p, err
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = r.cfg.Account
	uc.Name = p.UserID + "." + p.DeviceID
	uc.Expires = r.expiry(p).Unix()
	uc.Permissions = Permissions(p.UserID, p.DeviceID)
	uc.Limits.Subs = 64
	uc.Limits.Payload = 128 << 10
	ujwt, err := uc.Encode(r.cfg.Issuer)
	if err != nil {
		return "", p, fmt.Errorf("encode user jwt: %w", err)
	}
	return ujwt, p, nil
}

// expiry is when the user JWT for p expires: with the access token, and at
// most MaxTTL from now.
func (r *Responder) expiry(p account.Principal) time.Time {
	if max := time.Now().Add(r.cfg.MaxTTL); p.ExpiresAt.After(max) {
		return max
	}
	return p.ExpiresAt
}

func (r *Responder) remember(deviceID string, ref clientRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	live := r.conns[deviceID][:0]
	for _, c := range r.conns[deviceID] {
		if c.expires.After(now) {
			live = append(live, c)
		}
	}
	r.conns[deviceID] = append(live, ref)
	if len(r.conns) > 1<<16 {
		r.pruneLocked(now)
	}
}

// pruneLocked drops expired refs. mu must be held.
func (r *Responder) pruneLocked(now time.Time) {
	for d, refs := range r.conns {
		live := refs[:0]
		for _, c := range refs {
			if c.expires.After(now) {
				live = append(live, c)
			}
		}
		if len(live) == 0 {
			delete(r.conns, d)
		} else {
			r.conns[d] = live
		}
	}
}

// revoked kicks the connections of a revoked device.
func (r *Responder) revoked(m *nats.Msg) {
	var rev fabric.Revocation
	if err := json.Unmarshal(m.Data, &rev); err != nil {
		r.log.Error("bad revocation on nats", "subject", m.Subject, "err", err)
		return
	}
	deviceID := rev.DeviceID
	var refs, keep []clientRef
	r.mu.Lock()
	for _, c := range r.conns[deviceID] {
		if rev.Ends(c.generation) {
			refs = append(refs, c)
		} else {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		delete(r.conns, deviceID)
	} else {
		r.conns[deviceID] = keep
	}
	r.mu.Unlock()
	if r.cfg.Sys == nil {
		return
	}
	for _, c := range refs {
		body, _ := json.Marshal(map[string]uint64{"cid": c.cid})
		if _, err := r.cfg.Sys.Request(subject.ServerKick(c.server), body, 2*time.Second); err != nil {
			r.log.Warn("kick revoked device connection", "device_id", deviceID, "cid", c.cid, "err", err)
			continue
		}
		r.log.Info("revoked device disconnected from nats", "device_id", deviceID, "cid", c.cid)
	}
}

// LoadOrCreateIssuer reads the account nkey seed at path, or makes one and
// writes it there with mode 0600.
func LoadOrCreateIssuer(path string) (nkeys.KeyPair, error) {
	return loadOrCreateSeed(path)
}
