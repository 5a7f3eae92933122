package schema

import (
	"encoding/json"
	"time"
)

// ProtocolVersion is the WebSocket protocol version; docs/protocol.md.
// Additive changes (new server frame types, new optional fields in server
// frames) keep the version; anything else gets a new subprotocol.
const ProtocolVersion = 1

// WebSocket subprotocols. A client offers SubprotocolV1 and, because browsers
// cannot set headers on a WebSocket handshake, may carry its access token as
// a second subprotocol TokenSubprotocolPrefix+token. The server only ever
// echoes SubprotocolV1.
const (
	SubprotocolV1          = "mayfly.v1"
	TokenSubprotocolPrefix = "mayfly.token."
)

// WebSocket close codes the server uses, besides 1001 (going away: server
// shutdown), 1009 (frame too large) and 1011 (internal error).
const (
	CloseTokenRevoked = 4001 // the device was revoked or its session ended
	CloseSlowConsumer = 4002 // the client did not read fast enough
	CloseBadFrames    = 4003 // too many malformed frames in a row
	CloseRateLimited  = 4004 // the client kept sending faster than allowed
)

// Protocol limits a client can rely on.
const (
	// MaxFrameSize is the largest frame, in bytes, a client may send; a
	// larger one closes the connection with 1009.
	MaxFrameSize = 128 << 10
	// MaxRequestIDLen is the longest request id.
	MaxRequestIDLen = 64
	// MaxSeq is the largest sequence number or cursor a client may send,
	// 2^53-1, the largest integer a JavaScript number holds exactly.
	MaxSeq = 1<<53 - 1
)

// Frame types a client sends. Each is a request with an id, answered by
// exactly one result frame or one error frame carrying the same id.
const (
	FrameSend   = "send"   // store a message: SendFrame, answered by SentFrame
	FrameSync   = "sync"   // replay from a cursor, then go live: SyncFrame, answered by SyncedFrame
	FrameRead   = "read"   // burn a received message: ReadFrame, answered by OKFrame
	FrameRecall = "recall" // withdraw an unread sent message: RecallFrame, answered by OKFrame
	FrameUnread = "unread" // unread counts per sender: UnreadFrame, answered by UnreadCountsFrame
	FramePing   = "ping"   // liveness: PingFrame, answered by PongFrame
)

// Frame types the server sends. FrameUnread is also the type of the
// answer to an unread request.
const (
	FrameHello  = "hello"  // first frame after connecting: HelloFrame
	FrameSent   = "sent"   // a send was stored: SentFrame
	FrameMsg    = "msg"    // a message of the device's mailbox: MsgFrame
	FrameSynced = "synced" // replay caught up; live messages follow: SyncedFrame
	FrameOK     = "ok"     // a read or recall succeeded: OKFrame
	FrameEvent  = "event"  // a live event: EventFrame
	FrameError  = "error"  // a request failed: ErrorFrame
	FramePong   = "pong"   // answer to ping: PongFrame
)

// SendFrame asks the server to store a message for To (a friend's user id)
// and a sync copy for the sender's other devices. Envelope is the sealed
// envelope (docs/envelope.md) as a JSON object, not a string.
type SendFrame struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	To       string          `json:"to"`
	Envelope json.RawMessage `json:"envelope"`
}

// SyncFrame asks for every message of the device's mailbox after Cursor (the
// last sequence the device has; 0 for a new device), then live messages.
type SyncFrame struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Cursor uint64 `json:"cursor"`
}

// ReadFrame burns message Seq of the reader's own mailbox, and the sender's
// copy of it.
type ReadFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
}

// RecallFrame withdraws a message the sender sent and the recipient has not
// read yet; Seq is the sequence of the sender's own copy (SentFrame.Seq, or
// the Seq of the self MsgFrame).
type RecallFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
}

// UnreadFrame asks for the unread counts per sender.
type UnreadFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// PingFrame asks for a PongFrame.
type PingFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// HelloFrame is the first frame of every connection.
type HelloFrame struct {
	Type     string `json:"type"`
	V        int    `json:"v"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

// SentFrame answers a send once JetStream has stored both copies. Seq is the
// sequence of the sender's own copy (in the sender's mailbox), PeerSeq that
// of the recipient's copy. Duplicate reports a retried send whose message id
// was stored already; the sequences are those of the first send.
type SentFrame struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Seq       uint64 `json:"seq"`
	PeerSeq   uint64 `json:"peer_seq"`
	Duplicate bool   `json:"duplicate"`
}

// MsgFrame carries one message of the device's mailbox, by replay or live.
// Seq is its mailbox sequence (the device's next cursor); PrevSeq is the Seq
// of the msg frame sent before it on this connection, or the sync cursor for
// the first one (omitted when 0). Self marks the sync copy of a message the
// user sent (From is the user, To the peer). From, To, MsgID and SentAt come
// from the server's own headers; a client opens Envelope and checks they
// match the signed header.
type MsgFrame struct {
	Type     string          `json:"type"`
	Seq      uint64          `json:"seq"`
	PrevSeq  uint64          `json:"prev_seq,omitempty"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	MsgID    string          `json:"msg_id"`
	SentAt   time.Time       `json:"sent_at"`
	Self     bool            `json:"self"`
	Envelope json.RawMessage `json:"envelope"`
}

// SyncedFrame ends the replay a sync asked for: LastSeq is the last sequence
// delivered so far (the cursor if nothing was newer). Live messages follow.
type SyncedFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	LastSeq uint64 `json:"last_seq"`
}

// OKFrame answers a read or recall that succeeded.
type OKFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// UnreadCountsFrame answers an unread request: the number of unread messages
// in the user's mailbox per sender user id. Senders with none are absent.
type UnreadCountsFrame struct {
	Type   string         `json:"type"`
	ID     string         `json:"id"`
	Counts map[string]int `json:"counts"`
}

// EventFrame carries a live event (friend changes, burns, recalls, device
// revocations).
type EventFrame struct {
	Type  string `json:"type"`
	Event *Event `json:"event"`
}

// ErrorFrame answers a request that failed, or a frame that could not be
// read (then ID is empty unless the frame's id could be read).
type ErrorFrame struct {
	Type  string `json:"type"`
	ID    string `json:"id,omitempty"`
	Error *Error `json:"error"`
}

// PongFrame answers a ping.
type PongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}
