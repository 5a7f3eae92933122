package schema

// EventType names a live notification pushed to a user's connected devices.
type EventType string

// Event types. docs/api.md documents each one.
const (
	EventDeviceRevoked EventType = "device_revoked" // one of the user's devices was revoked
	// Identity reset events concern the user's own devices; DeviceID is the
	// device that asked. GET /v1/identity/reset has the details.
	EventIdentityResetRequested EventType = "identity_reset_requested" // a linked device asked to replace the identity key
	EventIdentityResetCancelled EventType = "identity_reset_cancelled" // a pending identity reset ended without taking effect

	// Friend graph events carry Peer, the other user. ByMe marks a change the
	// recipient made on one of its devices, sent so its other devices update.
	EventFriendRequest     EventType = "friend_request"      // a friend request was made (to you, or by you when by_me)
	EventFriendAccepted    EventType = "friend_accepted"     // a friendship began (accepted, or requested both ways)
	EventFriendRemoved     EventType = "friend_removed"      // a friendship ended (removed, or the other side blocked you)
	EventRequestDeclined   EventType = "request_declined"    // your request to peer was declined (or you declined peer's, when by_me)
	EventRequestCancelled  EventType = "request_cancelled"   // peer's friend request to you was withdrawn (or yours, when by_me)
	EventFriendKeysChanged EventType = "friend_keys_changed" // a friend's public keys changed; Peer has the new ones
	EventUserBlocked       EventType = "user_blocked"        // you blocked peer (only ever sent to the blocker)
	EventUserUnblocked     EventType = "user_unblocked"      // you unblocked peer (only ever sent to the blocker)

	// Presence events concern friends only (docs/fabric.md, "Presence").
	EventPresence         EventType = "presence"          // a friend came online or went offline: Presence
	EventPresenceSnapshot EventType = "presence_snapshot" // sent once on connect: Presences, one per friend

	// Message events carry Seq (the copy in the recipient's own mailbox),
	// MsgID and PeerID, the other user (docs/fabric.md, "Mailboxes").
	EventBurned    EventType = "burned"    // a message was read and burned: yours (you read it), or your sync copy (peer read it)
	EventRecalled  EventType = "recalled"  // an unread message was recalled by its sender: yours, or your sync copy (you recalled it)
	EventWithdrawn EventType = "withdrawn" // your sync copy was removed because its delivery failed (the sending device got the error)
	EventDelivered EventType = "delivered" // your sync copy's message reached a device of its recipient (PeerID); not yet read
)

// Event is a live notification for one user, published by the services on
// the user's event subject and forwarded by gateways to connected devices.
type Event struct {
	Type     EventType `json:"type"`
	DeviceID string    `json:"device_id,omitempty"`
	// Generation, on device_revoked, says that only the device's sessions
	// older than this generation ended (a re-login or a reused refresh
	// token); 0 means all of them (the device was revoked).
	Generation int   `json:"generation,omitempty"`
	Peer       *User `json:"peer,omitempty"`  // friend events: the other user
	ByMe       bool  `json:"by_me,omitempty"` // friend events: the recipient made the change
	// Presence is a friend's new state (presence events).
	Presence *PresenceState `json:"presence,omitempty"`
	// Presences is every friend's state (presence_snapshot events).
	Presences []PresenceState `json:"presences,omitempty"`
	// Seq, MsgID and PeerID describe the message of a message event.
	Seq    uint64 `json:"seq,omitempty"`
	MsgID  string `json:"msg_id,omitempty"`
	PeerID string `json:"peer_id,omitempty"`
}
