package schema

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// Code is a stable, machine-readable error code. The set of codes is closed:
// clients may branch on any code listed here, and no other code is ever sent.
// docs/api.md documents each one.
type Code string

// The error codes, grouped by the request they answer. Their HTTP status and
// whether a retry may succeed are fixed by [Code.Status] and [Code.Temporary].
const (
	// Any request.
	CodeBadRequest   Code = "bad_request"    // malformed JSON, unknown fields, missing fields
	CodeBodyTooLarge Code = "body_too_large" // request body over the endpoint's limit
	CodeNotFound     Code = "not_found"      // no such user, device, route or object
	CodeRateLimited  Code = "rate_limited"   // too many requests; retry later
	CodeInternal     Code = "internal"       // a server fault; details are in the server log
	CodeUnavailable  Code = "unavailable"    // a dependency is down; retry later
	CodeForbidden    Code = "forbidden"      // authenticated, but not allowed to do this

	// Registration and keys.
	CodeInvalidHandle Code = "invalid_handle" // handle is not 3-32 letters, digits or underscores
	CodeHandleTaken   Code = "handle_taken"   // handle already registered (case-insensitively)
	CodeInvalidKey    Code = "invalid_key"    // a public key is not base64url or has the wrong length

	// Login, refresh and tokens.
	CodeBadSignature     Code = "bad_signature"     // challenge signature does not verify
	CodeChallengeExpired Code = "challenge_expired" // challenge is past its expiry
	CodeChallengeUsed    Code = "challenge_used"    // challenge was already used for a login
	CodeInvalidDevice    Code = "invalid_device"    // device name is empty or too long
	CodeDeviceLimit      Code = "device_limit"      // the user already has the maximum number of devices
	CodeUnauthorized     Code = "unauthorized"      // no access token was presented
	CodeTokenInvalid     Code = "token_invalid"     // token is malformed, forged, or uses a wrong algorithm
	CodeTokenExpired     Code = "token_expired"     // access token is past its expiry; refresh it
	CodeTokenRevoked     Code = "token_revoked"     // the device was revoked or its session ended
	CodeRefreshInvalid   Code = "refresh_invalid"   // refresh token unknown, expired or revoked
	CodeRefreshReused    Code = "refresh_reused"    // an already used refresh token: the whole chain is revoked
	CodeAccountSuspended Code = "account_suspended" // the operator suspended this account; login and refresh are refused

	// Friends.
	CodeSelfRequest    Code = "self_request"    // a friend request to yourself
	CodeAlreadyFriends Code = "already_friends" // you are friends already
	CodeRequestExists  Code = "request_exists"  // you have a pending request to this user already
	CodeNoRequest      Code = "no_request"      // no pending request to accept, decline or cancel
	CodeNotFriend      Code = "not_friend"      // the other user is not your friend
	CodeFriendLimit    Code = "friend_limit"    // you or the other user has the maximum number of friends
	CodeRequestLimit   Code = "request_limit"   // too many pending outgoing friend requests
	CodeRefused        Code = "refused"         // the other user does not accept this from you (no reason is given)

	// Messages.
	CodeInvalidEnvelope Code = "invalid_envelope"  // the envelope is malformed, of an unknown version, or not from you
	CodeMessageTooLarge Code = "message_too_large" // the envelope or frame is over the size limit
	CodeSelfSend        Code = "self_send"         // a message to yourself
	CodeUnknownMessage  Code = "unknown_message"   // no such message in your mailbox (never sent, already burned, or expired)
	CodeMailboxFull     Code = "mailbox_full"      // the recipient's mailbox holds the maximum of unread messages
	CodeInvalidCursor   Code = "invalid_cursor"    // a sequence number or cursor is out of range

	// Device linking.
	CodeLinkExpired Code = "link_expired" // the link request is past its ten minutes; start linking again

	// Identity v2 (docs/envelope.md).
	CodeDeviceRevoked      Code = "device_revoked"      // the device's key was revoked: it cannot log in or be listed again
	CodeStaleDeviceList    Code = "stale_device_list"   // a device list whose version is not above the stored one
	CodeUnsupportedVersion Code = "unsupported_version" // an envelope or key format the server no longer accepts (v1); update the client
	CodePrekeyLimit        Code = "prekey_limit"        // the device would hold more than 100 unclaimed one-time prekeys
	// CodeUntrustedKeys is the clients' own code, never sent by the server:
	// a friend's identity key changed, or their device list or prekeys are
	// not signed by the pinned identity key; nothing was sealed or sent.
	CodeUntrustedKeys Code = "untrusted_keys"
)

var codeInfo = map[Code]struct {
	status    int
	temporary bool
}{
	CodeBadRequest:       {http.StatusBadRequest, false},
	CodeBodyTooLarge:     {http.StatusRequestEntityTooLarge, false},
	CodeNotFound:         {http.StatusNotFound, false},
	CodeRateLimited:      {http.StatusTooManyRequests, true},
	CodeInternal:         {http.StatusInternalServerError, true},
	CodeUnavailable:      {http.StatusServiceUnavailable, true},
	CodeForbidden:        {http.StatusForbidden, false},
	CodeInvalidHandle:    {http.StatusBadRequest, false},
	CodeHandleTaken:      {http.StatusConflict, false},
	CodeInvalidKey:       {http.StatusBadRequest, false},
	CodeBadSignature:     {http.StatusUnauthorized, false},
	CodeChallengeExpired: {http.StatusUnauthorized, false},
	CodeChallengeUsed:    {http.StatusUnauthorized, false},
	CodeInvalidDevice:    {http.StatusBadRequest, false},
	CodeDeviceLimit:      {http.StatusConflict, false},
	CodeUnauthorized:     {http.StatusUnauthorized, false},
	CodeTokenInvalid:     {http.StatusUnauthorized, false},
	CodeTokenExpired:     {http.StatusUnauthorized, false},
	CodeTokenRevoked:     {http.StatusUnauthorized, false},
	CodeRefreshInvalid:   {http.StatusUnauthorized, false},
	CodeRefreshReused:    {http.StatusUnauthorized, false},
	CodeAccountSuspended: {http.StatusForbidden, false},
	CodeSelfRequest:      {http.StatusBadRequest, false},
	CodeAlreadyFriends:   {http.StatusConflict, false},
	CodeRequestExists:    {http.StatusConflict, false},
	CodeNoRequest:        {http.StatusNotFound, false},
	CodeNotFriend:        {http.StatusForbidden, false},
	CodeFriendLimit:      {http.StatusConflict, false},
	CodeRequestLimit:     {http.StatusConflict, false},
	CodeRefused:          {http.StatusForbidden, false},
	CodeInvalidEnvelope:  {http.StatusBadRequest, false},
	CodeMessageTooLarge:  {http.StatusRequestEntityTooLarge, false},
	CodeSelfSend:         {http.StatusBadRequest, false},
	CodeUnknownMessage:   {http.StatusNotFound, false},
	CodeMailboxFull:      {http.StatusConflict, true},
	CodeInvalidCursor:    {http.StatusBadRequest, false},
	CodeLinkExpired:      {http.StatusGone, false},

	CodeDeviceRevoked:      {http.StatusForbidden, false},
	CodeStaleDeviceList:    {http.StatusConflict, false},
	CodeUnsupportedVersion: {http.StatusBadRequest, false},
	CodePrekeyLimit:        {http.StatusConflict, false},
	CodeUntrustedKeys:      {http.StatusConflict, false},
}

// Codes returns every defined code, for documentation tests.
func Codes() []Code {
	out := make([]Code, 0, len(codeInfo))
	for c := range codeInfo {
		out = append(out, c)
	}
	return out
}

// Known reports whether c is one of the defined codes.
func (c Code) Known() bool { _, ok := codeInfo[c]; return ok }

// Status is the HTTP status that goes with c; 500 for an unknown code.
func (c Code) Status() int {
	if i, ok := codeInfo[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Temporary reports whether retrying the same request later may succeed.
func (c Code) Temporary() bool { return codeInfo[c].temporary }

// Error is an error a client may see: a code from the closed set and a
// message safe to show (it never contains internal details). Servers return
// it from their services; transports encode it as-is.
type Error struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	Temporary bool   `json:"temporary,omitempty"`
}

// Error returns "code: message".
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so
// errors.Is(err, schema.Errorf(schema.CodeNotFound, "")) style checks and
// [HasCode] work through wrapping.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Errorf returns an *Error with code c and message msg. The message must be
// safe to show to the client.
func Errorf(c Code, msg string) *Error {
	return &Error{Code: c, Message: msg, Temporary: c.Temporary()}
}

// HasCode reports whether err is or wraps an *Error with code c.
func HasCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// AsError returns what a client may see of err: the first result of
// [ClientError]. Internal text never leaks.
func AsError(err error) *Error {
	e, _ := ClientError(err)
	return e
}

// ClientError is the one mapping from an error to what a client may see,
// for every transport (HTTP, WebSocket, NATS-native) and for the services
// that answer a failure they have no code for. It returns:
//
//   - the *Error err is or wraps, as it is;
//   - a CodeUnavailable error (temporary: retry later) when err says a
//     dependency did not answer: the network failed or timed out, the
//     deadline passed, a database connection was lost or refused, or
//     Postgres reported a state that passes (see [DependencyDown]);
//   - a CodeInternal error otherwise.
//
// fault reports that err carries no *Error: an unexpected failure, whose
// text the caller should log; it never reaches the client.
func ClientError(err error) (e *Error, fault bool) {
	switch {
	case errors.As(err, &e):
		return e, false
	case DependencyDown(err):
		return Errorf(CodeUnavailable, "a service the server depends on is unavailable; retry later"), true
	}
	return Errorf(CodeInternal, "internal error"), true
}

// DependencyDown reports whether err says a dependency of the server did
// not answer rather than that the request or the server is wrong, so a
// retry may succeed: a network error (refused, reset, timed out), a passed
// deadline, a connection lost mid-answer, an error that says it is safe to
// retry (pgconn's "conn closed", a failed connect before anything was
// sent), or a Postgres SQLSTATE of the classes a failover or restart
// produces (sqlStateDown). It looks at err's chain through interfaces, so
// schema imports no driver.
func DependencyDown(err error) bool {
	var (
		ne    net.Error
		retry interface{ SafeToRetry() bool }
		sql   interface{ SQLState() string }
	)
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
		return true
	case errors.As(err, &retry) && retry.SafeToRetry():
		return true
	case errors.As(err, &sql):
		return sqlStateDown(sql.SQLState())
	}
	return false
}

// sqlStateDown reports whether a Postgres SQLSTATE says the server is
// unreachable for now: connection exceptions (class 08), insufficient
// resources (class 53, e.g. too many connections), an administrator or
// crash shutdown and a server not accepting connections yet (57P01-57P03),
// and a write sent to a read-only server (25006: a standby, during a
// promotion).
func sqlStateDown(state string) bool {
	switch {
	case strings.HasPrefix(state, "08"), strings.HasPrefix(state, "53"):
		return true
	}
	switch state {
	case "57P01", "57P02", "57P03", "25006":
		return true
	}
	return false
}

// ErrorBody is the JSON body of every HTTP error response:
// {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error *Error `json:"error"`
}
