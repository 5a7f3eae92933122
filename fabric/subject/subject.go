// Package subject is the one home of every NATS subject Mayfly publishes
// on, subscribes to or grants, as nats-server's jetstream_api.go keeps every
// API subject as a named constant. Each subject that carries an id has a
// builder and a parser, side by side:
//
//	mbx.<p>.<user>              a user's mailbox, in stream MBX_<p>      Mailbox, ParseMailbox
//	dlv.mbx.<p>.<user>          its live deliveries (stream RePublish)   Delivery, ParseDelivery
//	evt.<user>                  a user's live events                     Events, ParseEvents
//	fab.graph.<user>            a user's friend graph changed            GraphChanges, ParseGraphChanges
//	fab.revoked.<user>          sessions of a user's device ended        Revoked, ParseRevoked
//	prs.chg.<user>.<device>     a presence key was written (RePublish)   PresenceChange, ParsePresenceChange
//	svc.<user>.<device>.<op>    a NATS-native client's request           Service, ParseService
//	_INBOX_<user>.…             a NATS-native client's reply subjects    Inbox, ParseInbox
//
// Builders validate every id (schema.ValidUserID, schema.ValidDeviceID)
// and return ErrBadID rather than a subject with extra tokens or
// wildcards; parsers accept exactly what the builder makes. Subjects under
// fab.> and prs.> are for Mayfly's own services only: no client user may be
// granted them (the callout's permissions are built here too, see
// fabric/callout). docs/fabric.md has the table with the reasons.
package subject

import (
	"errors"
	"strconv"
	"strings"

	"github.com/mayfly-im/mayfly/schema"
)

// ErrBadID means a value was not a well-formed id (or partition) and cannot
// go into a subject.
var ErrBadID = errors.New("subject: malformed id")

// Prefixes and fixed subjects.
const (
	// MailboxPrefix starts every mailbox subject.
	MailboxPrefix = "mbx."
	// DeliveryPrefix is what a mailbox stream puts before a stored message's
	// subject when it republishes it.
	DeliveryPrefix = "dlv."
	// DeliveryAll is the republish destination of the mailbox streams.
	DeliveryAll = DeliveryPrefix + ">"
	// MailboxStreamPrefix starts the name of every mailbox stream, MBX_<p>.
	MailboxStreamPrefix = "MBX_"
	// EventsPrefix starts every user's event subject.
	EventsPrefix = "evt."
	// GraphPrefix starts the friend graph change notices.
	GraphPrefix = "fab.graph."
	// GraphChangesAll matches every user's graph change notice.
	GraphChangesAll = GraphPrefix + "*"
	// RevokedPrefix starts the device revocation notices.
	RevokedPrefix = "fab.revoked."
	// RevokedAll matches every user's revocation notice.
	RevokedAll = RevokedPrefix + "*"
	// PresencePrefix starts the presence change notices.
	PresencePrefix = "prs.chg."
	// PresenceChangesAll matches every presence change notice.
	PresenceChangesAll = PresencePrefix + "*.*"
	// ServicePrefix starts every NATS-native request subject.
	ServicePrefix = "svc."
	// InboxPrefixBase is what a native client's inbox prefix starts with;
	// the user id follows without a dot.
	InboxPrefixBase = "_INBOX_"
	// AuthCallout is where NATS servers send authorization requests.
	AuthCallout = "$SYS.REQ.USER.AUTH"
	// RotateToken and RotatedToken are the last tokens of a partition's
	// block rotation fillers and marker (fabric/mailbox/rotate.go); they
	// cannot be user ids, so they never collide with a mailbox.
	RotateToken  = "~rotate"
	RotatedToken = "~rotated"
)

func validUser(id string) bool   { return schema.ValidUserID(id) }
func validDevice(id string) bool { return schema.ValidDeviceID(id) }
func partition(p int) string     { return strconv.Itoa(p) }

// Mailbox returns the mailbox subject of userID in partition p:
// mbx.<p>.<user>.
func Mailbox(p int, userID string) (string, error) {
	if p < 0 || !validUser(userID) {
		return "", ErrBadID
	}
	return MailboxPrefix + partition(p) + "." + userID, nil
}

// ParseMailbox returns the partition and user of a mailbox subject; ok is
// false for anything Mailbox would not build.
func ParseMailbox(subj string) (p int, userID string, ok bool) {
	rest, ok := strings.CutPrefix(subj, MailboxPrefix)
	if !ok {
		return 0, "", false
	}
	ps, uid, ok := strings.Cut(rest, ".")
	if !ok || !validUser(uid) {
		return 0, "", false
	}
	p, ok = parsePartition(ps)
	return p, uid, ok
}

// MailboxPartition returns the subjects of stream MBX_<p>: mbx.<p>.*.
func MailboxPartition(p int) string { return MailboxPrefix + partition(p) + ".*" }

// RotateFiller and RotateMarker return the block rotation's subjects in
// partition p: mbx.<p>.~rotate and mbx.<p>.~rotated.
func RotateFiller(p int) string { return MailboxPrefix + partition(p) + "." + RotateToken }

// RotateMarker: see RotateFiller.
func RotateMarker(p int) string { return MailboxPrefix + partition(p) + "." + RotatedToken }

// MailboxStream returns the name of partition p's stream: MBX_<p>.
func MailboxStream(p int) string { return MailboxStreamPrefix + partition(p) }

// ParseMailboxStream returns the partition of a stream named MBX_<p>.
func ParseMailboxStream(name string) (int, bool) {
	ps, ok := strings.CutPrefix(name, MailboxStreamPrefix)
	if !ok {
		return 0, false
	}
	return parsePartition(ps)
}

// Delivery returns the subject on which stream MBX_<p> republishes every
// message stored in userID's mailbox: dlv.mbx.<p>.<user>.
func Delivery(p int, userID string) (string, error) {
	m, err := Mailbox(p, userID)
	if err != nil {
		return "", err
	}
	return DeliveryPrefix + m, nil
}

// ParseDelivery returns the partition and user of a delivery subject.
func ParseDelivery(subj string) (p int, userID string, ok bool) {
	m, ok := strings.CutPrefix(subj, DeliveryPrefix)
	if !ok {
		return 0, "", false
	}
	return ParseMailbox(m)
}

// DeliveryAnyPartition returns dlv.mbx.*.<user>: every delivery subject of
// userID whatever the partition count (a native client's grant).
func DeliveryAnyPartition(userID string) (string, error) {
	if !validUser(userID) {
		return "", ErrBadID
	}
	return DeliveryPrefix + MailboxPrefix + "*." + userID, nil
}

// Events returns userID's live event subject: evt.<user>.
func Events(userID string) (string, error) { return userSubject(EventsPrefix, userID) }

// ParseEvents returns the user of an event subject.
func ParseEvents(subj string) (string, bool) { return parseUser(EventsPrefix, subj) }

// GraphChanges returns the subject announcing changes to userID's friend
// graph: fab.graph.<user>.
func GraphChanges(userID string) (string, error) { return userSubject(GraphPrefix, userID) }

// ParseGraphChanges returns the user of a graph change subject.
func ParseGraphChanges(subj string) (string, bool) { return parseUser(GraphPrefix, subj) }

// Revoked returns the subject announcing the end of sessions of a device
// of userID: fab.revoked.<user>.
func Revoked(userID string) (string, error) { return userSubject(RevokedPrefix, userID) }

// ParseRevoked returns the user of a revocation subject.
func ParseRevoked(subj string) (string, bool) { return parseUser(RevokedPrefix, subj) }

// PresenceKey returns the key subject of a device in presence bucket
// bucket: $KV.<bucket>.<user>.<device>.
func PresenceKey(bucket, userID, deviceID string) (string, error) {
	if !validUser(userID) || !validDevice(deviceID) {
		return "", ErrBadID
	}
	return PresenceBucket(bucket) + userID + "." + deviceID, nil
}

// PresenceBucket returns the prefix of every key of a KV bucket:
// $KV.<bucket>. (with the trailing dot).
func PresenceBucket(bucket string) string { return "$KV." + bucket + "." }

// PresenceChange returns the subject on which the presence bucket
// republishes a device key's write: prs.chg.<user>.<device>.
func PresenceChange(userID, deviceID string) (string, error) {
	if !validUser(userID) || !validDevice(deviceID) {
		return "", ErrBadID
	}
	return PresencePrefix + userID + "." + deviceID, nil
}

// ParsePresenceChange returns the user and device of a presence change
// subject.
func ParsePresenceChange(subj string) (userID, deviceID string, ok bool) {
	rest, ok := strings.CutPrefix(subj, PresencePrefix)
	if !ok {
		return "", "", false
	}
	userID, deviceID, ok = strings.Cut(rest, ".")
	if !ok || !validUser(userID) || !validDevice(deviceID) {
		return "", "", false
	}
	return userID, deviceID, true
}

// PresenceRepublish returns the source and destination of the presence
// bucket's RePublish: device keys ($KV.<bucket>.*.*) to prs.chg.<user>.<device>.
func PresenceRepublish(bucket string) (src, dest string) {
	return PresenceBucket(bucket) + "*.*", PresencePrefix + "{{wildcard(1)}}.{{wildcard(2)}}"
}

// Service returns the subject of operation op for a native client of
// deviceID of userID: svc.<user>.<device>.<op>. op is one of the
// operation names of fabric/natsapi (dotted words, no wildcards).
func Service(userID, deviceID, op string) (string, error) {
	if !validUser(userID) || !validDevice(deviceID) || !validOp(op) {
		return "", ErrBadID
	}
	return ServicePrefix + userID + "." + deviceID + "." + op, nil
}

// ServiceEndpoint returns the subject a service subscribes to for op, for
// every caller: svc.*.*.<op>.
func ServiceEndpoint(op string) string { return ServicePrefix + "*.*." + op }

// ServiceOf returns every request subject of one device: svc.<user>.<device>.>
// (a native client's publish grant).
func ServiceOf(userID, deviceID string) (string, error) {
	if !validUser(userID) || !validDevice(deviceID) {
		return "", ErrBadID
	}
	return ServicePrefix + userID + "." + deviceID + ".>", nil
}

// ParseService returns the caller and operation of a request subject.
func ParseService(subj string) (userID, deviceID, op string, ok bool) {
	rest, ok := strings.CutPrefix(subj, ServicePrefix)
	if !ok {
		return "", "", "", false
	}
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) != 3 || !validUser(parts[0]) || !validDevice(parts[1]) || !validOp(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// Inbox returns the inbox prefix a native client of userID must use
// (nats.CustomInboxPrefix): _INBOX_<user>. Replies go only under it.
// userID must be valid; a malformed one yields "".
func Inbox(userID string) string {
	if !validUser(userID) {
		return ""
	}
	return InboxPrefixBase + userID
}

// InboxAll returns every reply subject of userID: _INBOX_<user>.>.
func InboxAll(userID string) (string, error) {
	in := Inbox(userID)
	if in == "" {
		return "", ErrBadID
	}
	return in + ".>", nil
}

// ParseInbox returns the user of a reply subject _INBOX_<user>.<token>….
func ParseInbox(subj string) (string, bool) {
	rest, ok := strings.CutPrefix(subj, InboxPrefixBase)
	if !ok {
		return "", false
	}
	uid, tail, ok := strings.Cut(rest, ".")
	if !ok || tail == "" || !validUser(uid) {
		return "", false
	}
	return uid, true
}

// AccountDisconnect returns the system subject on which a server announces
// a closed client connection of account acc.
func AccountDisconnect(acc string) string { return "$SYS.ACCOUNT." + acc + ".DISCONNECT" }

// ServerKick returns the system request subject that disconnects a client
// from server serverID.
func ServerKick(serverID string) string { return "$SYS.REQ.SERVER." + serverID + ".KICK" }

func userSubject(prefix, userID string) (string, error) {
	if !validUser(userID) {
		return "", ErrBadID
	}
	return prefix + userID, nil
}

func parseUser(prefix, subj string) (string, bool) {
	id, ok := strings.CutPrefix(subj, prefix)
	if !ok || !validUser(id) {
		return "", false
	}
	return id, true
}

// parsePartition reads a partition token: decimal digits, no sign, no
// leading zero (except "0" itself), as partition writes it.
func parsePartition(s string) (int, bool) {
	if s == "" || len(s) > 6 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// validOp reports whether op is one or more dot-separated words of
// [a-z0-9_] (no wildcards, no empty token).
func validOp(op string) bool {
	if op == "" {
		return false
	}
	for tok := range strings.SplitSeq(op, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				return false
			}
		}
	}
	return true
}
