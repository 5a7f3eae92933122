// Package client is the Go client for Mayfly servers. It holds one user's
// identity keys and speaks the documented HTTP API (docs/api.md) and
// WebSocket protocol (docs/protocol.md) the way a device does: it registers,
// logs in by signing a challenge, refreshes tokens before they expire (and
// when the server says one has), manages friends, devices and device
// linking, keeps friends' public keys (flagging a key that changed), and
// sends and receives end-to-end encrypted text messages (schema/envelope).
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
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// Server is the base URL of the Mayfly server, e.g.
	// "http://127.0.0.1:8080"; required.
	Server string
	// Keys are the user's identity keys; required. Every device of the user
	// holds the same keys (see Link and Approve).
	Keys envelope.Keys
	// Handle is the user's handle; Login needs it (Register sets it).
	Handle string
	// UserID is the user's id, if known; Register and Login set it.
	UserID string
	// DeviceName names this device at login; default DefaultDeviceName. A
	// login with the name of an active device takes that device over,
	// ending its session, so every device needs its own name.
	DeviceName string
	// Session resumes an earlier session (its tokens); Storage's stored
	// session, when newer, wins at the next refresh.
	Session schema.Session
	// Cursor is the last mailbox sequence this device has handled; 0 for a
	// new device (replay everything the mailbox holds).
	Cursor uint64
	// Peers are friends' public keys remembered from earlier runs.
	Peers []Peer
	// Storage persists session, cursor and peers; nil keeps them in memory.
	Storage Storage
	// HTTPClient makes the HTTP requests; default a client with a 30s timeout.
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
	keys  envelope.Keys
	pub   envelope.PublicKeys

	// refreshMu serialises refreshes so one refresh token is used once.
	refreshMu sync.Mutex

	mu      sync.Mutex
	userID  string          // guarded by mu
	handle  string          // guarded by mu
	session schema.Session  // guarded by mu
	peers   map[string]Peer // by user id; guarded by mu
	cursor  uint64          // last handled mailbox seq; guarded by mu
	conn    *conn           // the live connection, nil when none; guarded by mu
	connCh  chan struct{}   // closed when conn is set; guarded by mu
	running bool            // Run is active; guarded by mu
	runErr  error           // why Run stopped, if the session ended; guarded by mu
}

// New returns a Client for cfg. It does no I/O.
func New(cfg Config) (*Client, error) {
	u, err := parseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	pub := cfg.Keys.Public()
	if err := pub.Validate(); err != nil || cfg.Keys.Kex == nil {
		return nil, fmt.Errorf("client: config needs valid Keys: %w", envelope.ErrKey)
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = DefaultDeviceName
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
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
		api: api{base: u, http: cfg.HTTPClient}, cfg: cfg, log: cfg.Logger, store: cfg.Storage,
		keys: cfg.Keys, pub: pub,
		userID: cfg.UserID, handle: cfg.Handle, session: cfg.Session, cursor: cfg.Cursor,
		peers: map[string]Peer{}, connCh: make(chan struct{}),
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
	UserID      string
	Handle      string
	DeviceID    string // "" until logged in
	Fingerprint string // of the user's public keys
}

// Identity returns the user's id, handle, current device and fingerprint.
func (c *Client) Identity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Identity{UserID: c.userID, Handle: c.handle, DeviceID: c.session.DeviceID, Fingerprint: envelope.Fingerprint(c.pub)}
}

// Keys returns the user's private identity keys, to store them (Dir does).
// They must never be logged or sent anywhere but to a device being linked.
func (c *Client) Keys() envelope.Keys { return c.keys }

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
