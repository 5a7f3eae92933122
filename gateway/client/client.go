// Package client is the Go client for Mayfly servers. It is one device of
// one user: it holds the device's signing key and prekeys (and, on the
// primary device, the account's identity key) and speaks the documented
// HTTP API (docs/api.md) and WebSocket protocol (docs/protocol.md): it
// registers, publishes the signed device list, logs in by signing a
// challenge with the device key, refreshes tokens, keeps its prekeys
// rotated and its one-time prekeys stocked, manages friends, devices and
// device linking, pins friends' identity keys (refusing to send to a friend
// whose key changed until the user accepts it), and sends and receives
// end-to-end encrypted text messages (schema/envelope, version 2).
//
// [Client.Run] keeps one WebSocket connected, reconnecting with exponential
// backoff and jitter; on each connection it replays the device's mailbox
// from its cursor, so a [Handler] sees every message once, in mailbox
// order, without gaps or duplicates. [Client.Send], [Client.Read],
// [Client.Recall] and [Client.Unread] go over that connection and are
// retried on the next one if it drops.
//
// Errors the server sent are *schema.Error values, wrapped with the
// operation: test them with [schema.HasCode] or errors.As. Errors found on
// the client side are the sentinels of this package.
//
// It imports only schema, schema/envelope and third-party packages, never
// server internals, so it can be vendored into any Go program. A [Client] is
// safe for concurrent use.
package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Client-side conditions callers branch on with errors.Is.
var (
	// ErrNotLoggedIn means the operation needs a session and there is none:
	// call Login (or Register, then Login) first.
	ErrNotLoggedIn = errors.New("client: not logged in")
	// ErrFingerprint means the server sent a fingerprint that does not match
	// the keys it sent with it.
	ErrFingerprint = errors.New("client: fingerprint does not match the keys")
	// ErrUnknownPeer means a user id or handle is not among the user's
	// friends (or earlier friends whose keys are remembered).
	ErrUnknownPeer = errors.New("client: unknown peer")
	// ErrLinkMismatch means the public key the server gave for a link code
	// does not hash to that code: the server, or someone, substituted it.
	ErrLinkMismatch = errors.New("client: link code does not match the device's key")
	// ErrBadMessage means a received message could not be verified or
	// decrypted, or its signed header disagrees with the server's.
	ErrBadMessage = errors.New("client: message could not be opened")
	// ErrSentHere marks the sync copy of a message this device sent: it
	// carries no wrap for its sending device (docs/envelope.md, Sealing).
	ErrSentHere = errors.New("client: sent from this device; no copy is kept")
	// ErrNotPrimary means the operation needs the identity key, which only
	// the primary device (the one that registered) holds.
	ErrNotPrimary = errors.New("client: only the primary device holds the identity key")
)

// Defaults for [Config].
const (
	DefaultDeviceName = "mayfly-go"
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// refreshMargin is how long before expiry an access token is replaced.
	refreshMargin = time.Minute
)

// Storage keeps what a Client learns and must remember across restarts.
// Its methods are called from the Client's goroutines, never concurrently
// for one Client; an implementation shared by several processes must make
// UpdateSession atomic across them (a file lock, a transaction).
type Storage interface {
	// UpdateSession calls fn with the stored session (the zero Session if
	// none) and stores the session fn returns, unless fn fails. Refresh
	// tokens are single use: a refresh must start from the latest stored
	// session, so two processes sharing a session never both use one.
	UpdateSession(fn func(schema.Session) (schema.Session, error)) error
	// SaveCursor stores the device's cursor: the last mailbox sequence whose
	// message the Handler has handled.
	SaveCursor(seq uint64) error
	// SavePeers stores the known peers (friends' pinned public keys).
	SavePeers(peers []Peer) error
	// SavePrekeys stores the device's prekey private keys. Deleting keys
	// here is what gives forward secrecy: the store must not keep old
	// versions.
	SavePrekeys(PrekeyState) error
	// SaveOwnListVersion stores the highest version of the user's own
	// device list this device has seen; a lower one later is a rollback by
	// the server (an older list, perhaps naming a revoked device) and is
	// refused.
	SaveOwnListVersion(v int64) error
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// Server is the base URL of the Mayfly server, e.g.
	// "http://127.0.0.1:8080"; required.
	Server string
	// Servers are more gateways of the same deployment (other cities),
	// tried in order after Server. A request that cannot connect to the
	// gateway in use is repeated on the next one, and a lost WebSocket
	// reconnects to the next one when its gateway refuses; the client
	// stays on the gateway that answered. Optional.
	Servers []string
	// Keys are the device's signing key and, on the primary device, the
	// identity key; required.
	Keys Keys
	// IdentityKey is the account's identity public key as this device
	// trusts it; taken from Keys on the primary, and pinned at link time on
	// another device.
	IdentityKey ed25519.PublicKey
	// Prekeys are the device's prekey private keys from earlier runs.
	Prekeys PrekeyState
	// Handle is the user's handle; Login needs it (Register sets it).
	Handle string
	// UserID is the user's id, if known; Register and Login set it.
	UserID string
	// DeviceName names this device in the device list shown to the user;
	// default DefaultDeviceName.
	DeviceName string
	// Session resumes an earlier session (its tokens); Storage's stored
	// session, when newer, wins at the next refresh.
	Session schema.Session
	// Cursor is the last mailbox sequence this device has handled; 0 for a
	// new device (replay everything the mailbox holds).
	Cursor uint64
	// Peers are friends' public keys remembered from earlier runs.
	Peers []Peer
	// OwnListVersion is the highest version of the user's own device list
	// seen in earlier runs; 0 if none.
	OwnListVersion int64
	// Storage persists session, cursor and peers; nil keeps them in memory.
	Storage Storage
	// HTTPClient makes the HTTP requests; default a client with a 30s
	// timeout whose connection attempts give up after 5s.
	HTTPClient *http.Client
	// Logger receives connection logs (never keys, tokens or messages);
	// default discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay between reconnection
	// attempts; defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Client is one device of one user.
type Client struct {
	api
	cfg   Config
	log   *slog.Logger
	store Storage
	keys  Keys
	ik    ed25519.PublicKey // the account's identity key as trusted here
	pk    *prekeys

	// refreshMu serialises refreshes so one refresh token is used once.
	refreshMu sync.Mutex

	mu        sync.Mutex
	userID    string                          // guarded by mu
	handle    string                          // guarded by mu
	session   schema.Session                  // guarded by mu
	peers     map[string]Peer                 // by user id; guarded by mu
	lists     map[string]*envelope.DeviceList // verified device lists by user id; guarded by mu
	ownListAt time.Time                       // when the own list in lists was fetched; guarded by mu
	ownVer    int64                           // highest own device list version seen; guarded by mu
	cursor    uint64                          // last handled mailbox seq; guarded by mu
	conn      *conn                           // the live connection, nil when none; guarded by mu
	connCh    chan struct{}                   // closed when conn is set; guarded by mu
	running   bool                            // Run is active; guarded by mu
	runErr    error                           // why Run stopped, if the session ended; guarded by mu
}

// New returns a Client for cfg. It does no I/O.
func New(cfg Config) (*Client, error) {
	srv, err := newServers(cfg.Server, cfg.Servers)
	if err != nil {
		return nil, err
	}
	if err := cfg.Keys.validate(); err != nil {
		return nil, fmt.Errorf("client: config needs valid Keys: %w", err)
	}
	if cfg.Keys.Primary() {
		cfg.IdentityKey = cfg.Keys.IdentityPublic()
	}
	pk, err := loadPrekeys(cfg.Prekeys)
	if err != nil {
		return nil, fmt.Errorf("client: config Prekeys: %w", err)
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = DefaultDeviceName
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Storage == nil {
		cfg.Storage = &memoryStorage{session: cfg.Session}
	}
	c := &Client{
		api: api{servers: srv, http: cfg.HTTPClient}, cfg: cfg, log: cfg.Logger, store: cfg.Storage,
		keys: cfg.Keys, ik: cfg.IdentityKey, pk: pk,
		userID: cfg.UserID, handle: cfg.Handle, session: cfg.Session, cursor: cfg.Cursor, ownVer: cfg.OwnListVersion,
		peers: map[string]Peer{}, lists: map[string]*envelope.DeviceList{}, connCh: make(chan struct{}),
	}
	for _, p := range cfg.Peers {
		c.peers[p.UserID] = p
	}
	return c, nil
}

// parseServer checks a server base URL.
func parseServer(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("client: config needs Server")
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("client: server %q is not an http or https base URL", s)
	}
	return u, nil
}

// Identity is who a Client is.
type Identity struct {
	UserID   string
	Handle   string
	DeviceID string // derived from the device key
	// Fingerprint is of the account's identity key as this device trusts
	// it; "" while unknown.
	Fingerprint string
	// Primary reports whether this device holds the identity key.
	Primary bool
}

// Identity returns the user's id, handle, device and fingerprint.
func (c *Client) Identity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := Identity{UserID: c.userID, Handle: c.handle, DeviceID: c.keys.DeviceID(), Primary: c.keys.Primary()}
	if c.ik != nil {
		id.Fingerprint = envelope.IdentityFingerprint(c.ik)
	}
	return id
}

// Keys returns the device's private keys, to store them (Dir does). They
// must never be logged or sent anywhere.
func (c *Client) Keys() Keys { return c.keys }

// IdentityKey returns the account's identity public key as this device
// trusts it, nil while unknown.
func (c *Client) IdentityKey() ed25519.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ik
}

// Cursor returns the last mailbox sequence the Handler has handled.
func (c *Client) Cursor() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// memoryStorage is the Storage of a Client configured without one.
type memoryStorage struct {
	mu      sync.Mutex
	session schema.Session // guarded by mu
}

func (m *memoryStorage) UpdateSession(fn func(schema.Session) (schema.Session, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := fn(m.session)
	if err != nil {
		return err
	}
	m.session = s
	return nil
}

func (m *memoryStorage) SaveCursor(uint64) error { return nil }
func (m *memoryStorage) SavePeers([]Peer) error  { return nil }

func (m *memoryStorage) SavePrekeys(PrekeyState) error  { return nil }
func (m *memoryStorage) SaveOwnListVersion(int64) error { return nil }
