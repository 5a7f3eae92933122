package schema

import "time"

// Friend graph limits. docs/api.md ("Friends") explains each.
const (
	// MaxFriends is the most accepted friendships a user may have.
	MaxFriends = 20
	// MaxOutgoingRequests is the most pending (unexpired) friend requests a
	// user may have sent.
	MaxOutgoingRequests = 20
)

// HandleRequest is a body naming another user by handle: POST
// /v1/friends/requests (send a friend request) and POST /v1/blocks (block).
type HandleRequest struct {
	Handle string `json:"handle"`
}

// FriendRequest is one pending friend request, seen from the caller's side:
// UserID and Handle name the other user (the sender of an incoming request,
// the recipient of an outgoing one).
type FriendRequest struct {
	UserID    string    `json:"user_id"`
	Handle    string    `json:"handle"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// FriendRequests is the answer to GET /v1/friends/requests, oldest first.
type FriendRequests struct {
	Incoming []FriendRequest `json:"incoming"`
	Outgoing []FriendRequest `json:"outgoing"`
}

// Friend is one of the caller's friends: the friend's public identity and
// since when they are friends.
type Friend struct {
	UserID      string    `json:"user_id"`
	Handle      string    `json:"handle"`
	IK          string    `json:"ik"`
	Fingerprint string    `json:"fingerprint"`
	Since       time.Time `json:"since"`
}

// FriendList is the answer to GET /v1/friends, oldest friendship first.
type FriendList struct {
	Friends []Friend `json:"friends"`
}

// FriendRequestResult answers POST /v1/friends/requests and POST
// /v1/friends/requests/{handle}/accept. Exactly one field is set: Request
// for a new pending request (HTTP 201), Friend when a friendship began (HTTP
// 200: an accept, or a request to someone who had already requested you).
type FriendRequestResult struct {
	Request *FriendRequest `json:"request,omitempty"`
	Friend  *Friend        `json:"friend,omitempty"`
}

// Block is a user the caller has blocked, and since when.
type Block struct {
	UserID string    `json:"user_id"`
	Handle string    `json:"handle"`
	Since  time.Time `json:"since"`
}

// BlockList is the answer to GET /v1/blocks, oldest first.
type BlockList struct {
	Blocks []Block `json:"blocks"`
}
