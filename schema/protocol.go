package schema

// ProtocolVersion is the WebSocket protocol version; docs/protocol.md.
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
// shutdown) and 1009 (frame too large).
const (
	CloseTokenRevoked = 4001 // the device was revoked or its session ended
	CloseSlowConsumer = 4002 // the client did not read fast enough
	CloseBadFrames    = 4003 // too many malformed frames
	CloseRateLimited  = 4004 // the client sent too fast
)

// Frame types sent by the server that need no request.
const (
	FrameHello = "hello" // first frame after connecting: who you are
	FrameEvent = "event" // a live event (Event)
	FramePong  = "pong"  // answer to ping
	FrameError = "error" // a request failed
)

// Frame types a client may send.
const (
	FramePing = "ping"
)

// Frame is the envelope of every WebSocket message in both directions: a
// JSON object whose type says which other fields are set. ID is chosen by
// the client for requests and echoed in the answer.
type Frame struct {
	Type     string `json:"type"`
	ID       string `json:"id,omitempty"`
	V        int    `json:"v,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	Event    *Event `json:"event,omitempty"`
	Error    *Error `json:"error,omitempty"`
}
