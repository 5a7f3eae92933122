package client

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// ErrNoIdentity means a Dir holds no identity yet: register or link first.
var ErrNoIdentity = errors.New("client: no identity in this directory")

// errMissing is a state file that does not exist yet.
var errMissing = errors.New("file does not exist")

// Dir keeps one device's state in a directory (mode 0700), one file each,
// every file mode 0600 and replaced atomically:
//
//	identity.json  user id, handle, the device key, and the identity key
//	               (private on the primary, public elsewhere)
//	device         this device's name
//	session.json   this device's session (refresh token included)
//	cursor         the last handled mailbox sequence, in decimal
//	peers.json     friends' pinned identity keys
//	prekeys.json   the device's prekey private keys (rewritten as they are
//	               deleted: forward secrecy depends on it)
//	listversion    the highest version of the user's own device list seen,
//	               in decimal (an older one is a rollback)
//	lock           taken (flock) around session refreshes
//
// It implements Storage. Several processes may share one Dir: refreshes are
// serialised by the lock and always start from the newest stored session.
type Dir struct {
	path string
}

// Files in a Dir.
const (
	identityFile = "identity.json"
	deviceFile   = "device"
	sessionFile  = "session.json"
	cursorFile   = "cursor"
	peersFile    = "peers.json"
	prekeysFile  = "prekeys.json"
	versionFile  = "listversion"
	lockFile     = "lock"
)

// OpenDir opens the state directory path, creating it (mode 0700) if needed
// and tightening its mode to 0700 if it is looser.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("open state dir: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open state dir: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o700); err != nil {
			return nil, fmt.Errorf("open state dir: %w", err)
		}
	}
	return &Dir{path: path}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// identityJSON is identity.json. SignSeed and KexPrivate are a home from
// before identity v2: its signing key becomes the identity key.
type identityJSON struct {
	UserID       string `json:"user_id"`
	Handle       string `json:"handle"`
	DeviceSeed   string `json:"device_seed,omitempty"`   // Ed25519 seed, base64url
	IdentitySeed string `json:"identity_seed,omitempty"` // Ed25519 seed, base64url; primary only
	IdentityKey  string `json:"identity_key,omitempty"`  // Ed25519 public key, base64url
	// PendingSeed is the identity key of a pending identity reset (Keys.PendingIdentity).
	PendingSeed string `json:"pending_identity_seed,omitempty"`
	SignSeed    string `json:"sign_seed,omitempty"`
	KexPrivate  string `json:"kex_private,omitempty"`
}

// SaveIdentity stores the user's identity and the device's private keys,
// replacing any. ik is the account's identity public key as this device
// trusts it (nil: unknown yet; on the primary it is keys.Identity's).
func (d *Dir) SaveIdentity(userID, handle string, keys Keys, ik ed25519.PublicKey) error {
	id := identityJSON{UserID: userID, Handle: handle, DeviceSeed: b64.EncodeToString(keys.Device.Seed())}
	if keys.Primary() {
		id.IdentitySeed, ik = b64.EncodeToString(keys.Identity.Seed()), keys.IdentityPublic()
	}
	if ik != nil {
		id.IdentityKey = b64.EncodeToString(ik)
	}
	if keys.PendingIdentity != nil {
		id.PendingSeed = b64.EncodeToString(keys.PendingIdentity.Seed())
	}
	return d.writeJSON(identityFile, id)
}

// LoadIdentity returns the stored identity. A home from before identity
// v2 is converted once: its signing key becomes the identity key and a new
// device key is made and stored. Errors: ErrNoIdentity.
func (d *Dir) LoadIdentity() (userID, handle string, keys Keys, ik ed25519.PublicKey, err error) {
	var id identityJSON
	if err := d.readJSON(identityFile, &id); errors.Is(err, errMissing) {
		return "", "", Keys{}, nil, ErrNoIdentity
	} else if err != nil {
		return "", "", Keys{}, nil, err
	}
	if id.SignSeed != "" && id.DeviceSeed == "" {
		if keys, err = NewKeys(false); err != nil {
			return "", "", Keys{}, nil, err
		}
		id.IdentitySeed, id.SignSeed, id.KexPrivate = id.SignSeed, "", ""
		id.DeviceSeed = b64.EncodeToString(keys.Device.Seed())
		if err := d.writeJSON(identityFile, id); err != nil {
			return "", "", Keys{}, nil, err
		}
	}
	if keys.Device, err = decodeSeed(id.DeviceSeed); err != nil {
		return "", "", Keys{}, nil, fmt.Errorf("read %s: device key: %w", identityFile, err)
	}
	if id.IdentitySeed != "" {
		if keys.Identity, err = decodeSeed(id.IdentitySeed); err != nil {
			return "", "", Keys{}, nil, fmt.Errorf("read %s: identity key: %w", identityFile, err)
		}
		ik = keys.IdentityPublic()
	} else if id.IdentityKey != "" {
		if ik, err = envelope.DecodeKey(id.IdentityKey, envelope.SignKeySize); err != nil {
			return "", "", Keys{}, nil, fmt.Errorf("read %s: %w", identityFile, err)
		}
	}
	if id.PendingSeed != "" {
		if keys.PendingIdentity, err = decodeSeed(id.PendingSeed); err != nil {
			return "", "", Keys{}, nil, fmt.Errorf("read %s: pending identity key: %w", identityFile, err)
		}
	}
	return id.UserID, id.Handle, keys, ik, nil
}

func decodeSeed(s string) (ed25519.PrivateKey, error) {
	seed, err := b64.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed must be %d bytes of base64url: %w", ed25519.SeedSize, envelope.ErrKey)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// RemoveIdentity deletes the stored identity (after a registration the
// server refused, say). The keys are gone for good.
func (d *Dir) RemoveIdentity() error {
	err := os.Remove(filepath.Join(d.path, identityFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove identity: %w", err)
	}
	return nil
}

// DeviceName returns the stored device name, "" if none.
func (d *Dir) DeviceName() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.path, deviceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read device name: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetDeviceName stores the device name.
func (d *Dir) SetDeviceName(name string) error {
	return d.writeFile(deviceFile, []byte(name+"\n"))
}

// Config returns a Client config for server from what the Dir holds, with
// the Dir as Storage. Errors: ErrNoIdentity.
func (d *Dir) Config(server string) (Config, error) {
	userID, handle, keys, ik, err := d.LoadIdentity()
	if err != nil {
		return Config{}, err
	}
	var pre PrekeyState
	if err := d.readJSON(prekeysFile, &pre); err != nil && !errors.Is(err, errMissing) {
		return Config{}, err
	}
	var s schema.Session
	if err := d.readJSON(sessionFile, &s); err != nil && !errors.Is(err, errMissing) {
		return Config{}, err
	}
	name, err := d.DeviceName()
	if err != nil {
		return Config{}, err
	}
	cursor, err := d.Cursor()
	if err != nil {
		return Config{}, err
	}
	ownVer, err := d.readUint(versionFile)
	if err != nil {
		return Config{}, err
	}
	if ownVer > envelope.MaxVersion {
		return Config{}, fmt.Errorf("read %s: out of range", versionFile)
	}
	var peers []Peer
	if err := d.readJSON(peersFile, &peers); err != nil && !errors.Is(err, errMissing) {
		return Config{}, err
	}
	return Config{
		Server: server, Keys: keys, IdentityKey: ik, Prekeys: pre, Handle: handle, UserID: userID, DeviceName: name,
		Session: s, Cursor: cursor, Peers: peers, OwnListVersion: int64(ownVer), Storage: d,
	}, nil
}

// Cursor returns the stored cursor, 0 if none.
func (d *Dir) Cursor() (uint64, error) { return d.readUint(cursorFile) }

// readUint reads a file holding one decimal number; 0 if it is missing.
func (d *Dir) readUint(name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: not a number", name)
	}
	return n, nil
}

// UpdateSession implements Storage under the directory's lock.
func (d *Dir) UpdateSession(fn func(schema.Session) (schema.Session, error)) error {
	return d.withLock(func() error {
		var s schema.Session
		if err := d.readJSON(sessionFile, &s); err != nil && !errors.Is(err, errMissing) {
			return err
		}
		next, err := fn(s)
		if err != nil {
			return err
		}
		return d.writeJSON(sessionFile, next)
	})
}

// SaveCursor implements Storage.
func (d *Dir) SaveCursor(seq uint64) error {
	return d.writeFile(cursorFile, []byte(strconv.FormatUint(seq, 10)+"\n"))
}

// SaveOwnListVersion implements Storage.
func (d *Dir) SaveOwnListVersion(v int64) error {
	return d.writeFile(versionFile, []byte(strconv.FormatInt(v, 10)+"\n"))
}

// SavePeers implements Storage.
func (d *Dir) SavePeers(peers []Peer) error { return d.writeJSON(peersFile, peers) }

// SavePrekeys implements Storage. The file is replaced by rename; the old
// one's blocks are freed, not overwritten (see docs/cli.md on disks).
func (d *Dir) SavePrekeys(st PrekeyState) error { return d.writeJSON(prekeysFile, st) }

func (d *Dir) readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", name, errMissing)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

func (d *Dir) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return d.writeFile(name, append(b, '\n'))
}

// writeFile replaces name with b atomically: a temporary file of mode 0600
// in the same directory, synced, then renamed over it.
func (d *Dir) writeFile(name string, b []byte) error {
	f, err := os.CreateTemp(d.path, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(d.path, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// withLock runs fn holding the directory's lock file exclusively.
func (d *Dir) withLock(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(d.path, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock state dir: %w", err)
	}
	defer f.Close()
	if err := lockFileExclusive(f); err != nil {
		return fmt.Errorf("lock state dir: %w", err)
	}
	return fn() // closing f releases the lock
}
