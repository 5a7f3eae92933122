package schema

import "time"

// PresenceState is one user's presence as a friend sees it: online while any
// of the user's devices is connected. LastSeen is set only when the user is
// offline, shares "last seen" (PresenceSettings) and went offline recently
// enough for the server to still know when (docs/fabric.md, "Presence").
type PresenceState struct {
	UserID   string     `json:"user_id"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// PresenceSettings is the caller's presence privacy: the answer to GET and
// the body of PUT /v1/settings/presence. ShareLastSeen lets friends see when
// the caller was last online; online/offline itself is always visible to
// friends, and to nobody else.
type PresenceSettings struct {
	ShareLastSeen bool `json:"share_last_seen"`
}
