package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mayfly-im/mayfly/schema"
)

// Friend graph conditions callers branch on.
var (
	// ErrFriendLimit means the acting user has schema.MaxFriends friends.
	ErrFriendLimit = errors.New("store: friend limit reached")
	// ErrPeerFriendLimit means the other user has schema.MaxFriends friends.
	ErrPeerFriendLimit = errors.New("store: other user's friend limit reached")
	// ErrRequestLimit means the sender has schema.MaxOutgoingRequests pending requests.
	ErrRequestLimit   = errors.New("store: too many pending outgoing friend requests")
	ErrAlreadyFriends = errors.New("store: already friends")
	ErrRequestExists  = errors.New("store: friend request already pending")
	ErrNoRequest      = errors.New("store: no pending friend request")
	ErrNotFriend      = errors.New("store: not friends")
	// ErrBlocked means the other user has blocked the acting user.
	ErrBlocked = errors.New("store: blocked by the other user")
	// ErrBlocking means the acting user has blocked the other user.
	ErrBlocking   = errors.New("store: the other user is blocked")
	ErrNotBlocked = errors.New("store: user is not blocked")
	// ErrRateLimited means the sender made too many request attempts in the window.
	ErrRateLimited = errors.New("store: friend request rate limit reached")
)

// attemptKept lists the conditions after which a request attempt still
// counts against the sender's rate limit (the transaction commits the
// attempt, nothing else).
var attemptKept = []error{
	ErrFriendLimit, ErrPeerFriendLimit, ErrRequestLimit, ErrAlreadyFriends,
	ErrRequestExists, ErrBlocked, ErrBlocking,
}

// FriendRequest is a pending request as seen by one side: Peer is the other
// user (the sender of an incoming request, the recipient of an outgoing one).
type FriendRequest struct {
	Peer      User
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Friend is a friend and since when.
type Friend struct {
	User
	Since time.Time
}

// Block is a blocked user and since when.
type Block struct {
	User
	Since time.Time
}

// RequestParams describes a friend request from FromID to ToID.
type RequestParams struct {
	FromID, ToID string
	// TTL is how long the request stays pending; at least a millisecond.
	TTL time.Duration
	// RateLimit is how many attempts FromID may make per RateWindow.
	RateLimit  int
	RateWindow time.Duration
}

// RequestOutcome is what a friend request did: either a new pending Request,
// or, when ToID had already requested FromID, a friendship (Mutual) begun at Since.
type RequestOutcome struct {
	Request FriendRequest // Peer is left empty; the caller knows it
	Mutual  bool
	Since   time.Time
}

// lockUsers takes row locks on the given distinct users in id order, so two
// transactions locking the same pair queue instead of deadlocking. Every
// friend graph change holds them: counts read after the lock cannot change
// until commit. FOR NO KEY UPDATE excludes the other graph changes (and
// FOR UPDATE lockers such as login) but not foreign-key checks of rows that
// merely reference the user. It returns ErrNotFound if a user is missing.
func lockUsers(ctx context.Context, tx pgx.Tx, ids ...string) error {
	rows, err := tx.Query(ctx, `SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	if n != len(ids) {
		return ErrNotFound
	}
	return nil
}

// secs renders d as float seconds for make_interval.
func secs(d time.Duration) float64 { return d.Seconds() }

// RequestFriend records a friend request attempt and, if the rules allow,
// makes the request; when ToID has a pending request to FromID, the two
// become friends instead (Mutual). Errors: ErrNotFound (a user is missing),
// ErrRateLimited, ErrBlocked, ErrBlocking, ErrAlreadyFriends,
// ErrRequestExists, ErrRequestLimit, ErrFriendLimit, ErrPeerFriendLimit.
// Every attempt past the rate check counts against the limit, whatever its
// outcome; nothing else changes on error.
func (db *DB) RequestFriend(ctx context.Context, p RequestParams) (RequestOutcome, error) {
	var out RequestOutcome
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx, p.FromID, p.ToID); err != nil {
			return err
		}
		if err := recordAttempt(ctx, tx, p); err != nil {
			return err
		}
		err := requestLocked(ctx, tx, p, &out)
		for _, keep := range attemptKept {
			if errors.Is(err, keep) {
				return commitErr{err}
			}
		}
		return err
	})
	return out, err
}

// recordAttempt enforces and counts the sender's request rate. The sender's
// row must be locked.
func recordAttempt(ctx context.Context, tx pgx.Tx, p RequestParams) error {
	if _, err := tx.Exec(ctx,
		`DELETE FROM friend_request_attempts WHERE user_id = $1 AND at <= now() - make_interval(secs => $2)`,
		p.FromID, secs(p.RateWindow)); err != nil {
		return fmt.Errorf("prune request attempts: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM friend_request_attempts WHERE user_id = $1`, p.FromID).Scan(&n); err != nil {
		return fmt.Errorf("count request attempts: %w", err)
	}
	if n >= p.RateLimit {
		return ErrRateLimited
	}
	if _, err := tx.Exec(ctx, `INSERT INTO friend_request_attempts (user_id) VALUES ($1)`, p.FromID); err != nil {
		return fmt.Errorf("record request attempt: %w", err)
	}
	return nil
}

// requestLocked applies the request rules. Both users' rows must be locked.
func requestLocked(ctx context.Context, tx pgx.Tx, p RequestParams, out *RequestOutcome) error {
	from, to := p.FromID, p.ToID
	if _, err := tx.Exec(ctx, `
		DELETE FROM friend_requests
		WHERE ((from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)) AND expires_at <= now()`,
		from, to); err != nil {
		return fmt.Errorf("prune pair requests: %w", err)
	}
	if err := checkBlocks(ctx, tx, from, to); err != nil {
		return err
	}
	var friends, outgoing, incoming bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2),
		       EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2),
		       EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $2 AND to_id = $1)`,
		from, to).Scan(&friends, &outgoing, &incoming)
	switch {
	case err != nil:
		return fmt.Errorf("read pair state: %w", err)
	case friends:
		return ErrAlreadyFriends
	case outgoing:
		return ErrRequestExists
	case incoming:
		since, err := befriendLocked(ctx, tx, from, to)
		out.Mutual, out.Since = true, since
		return err
	}
	var pending int
	if err := tx.QueryRow(ctx,
		`SELECT count(*) FROM friend_requests WHERE from_id = $1 AND expires_at > now()`, from).Scan(&pending); err != nil {
		return fmt.Errorf("count outgoing requests: %w", err)
	}
	if pending >= schema.MaxOutgoingRequests {
		return ErrRequestLimit
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO friend_requests (from_id, to_id, expires_at)
		VALUES ($1, $2, now() + make_interval(secs => $3))
		RETURNING created_at, expires_at`, from, to, secs(p.TTL)).
		Scan(&out.Request.CreatedAt, &out.Request.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert friend request: %w", err)
	}
	return nil
}

// checkBlocks returns ErrBlocked if to blocks from, else ErrBlocking if from
// blocks to, else nil.
func checkBlocks(ctx context.Context, tx pgx.Tx, from, to string) error {
	var blocked, blocking bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1),
		       EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)`,
		from, to).Scan(&blocked, &blocking)
	switch {
	case err != nil:
		return fmt.Errorf("read blocks: %w", err)
	case blocked:
		return ErrBlocked
	case blocking:
		return ErrBlocking
	}
	return nil
}

// befriendLocked makes a and b friends, unless either has schema.MaxFriends
// friends (ErrFriendLimit for a, ErrPeerFriendLimit for b), and deletes their
// requests to each other. Both rows must be locked, so the counts hold until
// commit.
func befriendLocked(ctx context.Context, tx pgx.Tx, a, b string) (time.Time, error) {
	var na, nb int
	err := tx.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM friendships WHERE user_id = $1),
		       (SELECT count(*) FROM friendships WHERE user_id = $2)`, a, b).Scan(&na, &nb)
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("count friends: %w", err)
	case na >= schema.MaxFriends:
		return time.Time{}, ErrFriendLimit
	case nb >= schema.MaxFriends:
		return time.Time{}, ErrPeerFriendLimit
	}
	var since time.Time
	if err := tx.QueryRow(ctx, `
		INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1) RETURNING since`, a, b).
		Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("insert friendship: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)`, a, b); err != nil {
		return time.Time{}, fmt.Errorf("delete answered requests: %w", err)
	}
	return since, nil
}

// AcceptFriend accepts fromID's pending request to userID: they become
// friends and the request is gone. Errors: ErrNotFound, ErrNoRequest (none
// pending, or expired), ErrFriendLimit (userID is full), ErrPeerFriendLimit
// (fromID is full); on error nothing changes and the request stays.
func (db *DB) AcceptFriend(ctx context.Context, userID, fromID string) (since time.Time, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx, userID, fromID); err != nil {
			return err
		}
		var pending bool
		if err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2 AND expires_at > now())`,
			fromID, userID).Scan(&pending); err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if !pending {
			return ErrNoRequest
		}
		since, err = befriendLocked(ctx, tx, userID, fromID)
		return err
	})
	return since, err
}

// deleteRequest deletes the pending request from -> to, or returns ErrNoRequest.
func (db *DB) deleteRequest(ctx context.Context, op, from, to string) error {
	tag, err := db.pool.Exec(ctx,
		`DELETE FROM friend_requests WHERE from_id = $1 AND to_id = $2 AND expires_at > now()`, from, to)
	if err != nil {
		return fmt.Errorf("%s friend request: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoRequest
	}
	return nil
}

// DeclineFriend deletes fromID's pending request to userID, or returns ErrNoRequest.
func (db *DB) DeclineFriend(ctx context.Context, userID, fromID string) error {
	return db.deleteRequest(ctx, "decline", fromID, userID)
}

// CancelFriendRequest deletes userID's own pending request to toID, or
// returns ErrNoRequest.
func (db *DB) CancelFriendRequest(ctx context.Context, userID, toID string) error {
	return db.deleteRequest(ctx, "cancel", userID, toID)
}

// RemoveFriend ends the friendship of userID and friendID (both rows), or
// returns ErrNotFriend.
func (db *DB) RemoveFriend(ctx context.Context, userID, friendID string) error {
	tag, err := db.pool.Exec(ctx, `
		DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)`,
		userID, friendID)
	if err != nil {
		return fmt.Errorf("remove friend: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFriend
	}
	return nil
}

// BlockOutcome is what a block undid besides recording the block.
type BlockOutcome struct {
	WasFriend      bool // the friendship was ended
	CancelledOwn   bool // the blocker's pending request to the blocked user was deleted
	DroppedRequest bool // the blocked user's pending request to the blocker was deleted
}

// BlockUser records that blocker blocks blocked (idempotent: an existing
// block keeps its time), ends their friendship and deletes pending requests
// either way, in one transaction under both users' locks. Errors: ErrNotFound.
func (db *DB) BlockUser(ctx context.Context, blocker, blocked string) (BlockOutcome, error) {
	var out BlockOutcome
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx, blocker, blocked); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, blocker, blocked); err != nil {
			return fmt.Errorf("insert block: %w", err)
		}
		tag, err := tx.Exec(ctx, `
			DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)`,
			blocker, blocked)
		if err != nil {
			return fmt.Errorf("block: remove friendship: %w", err)
		}
		out.WasFriend = tag.RowsAffected() > 0
		rows, err := tx.Query(ctx, `
			DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)
			RETURNING from_id = $1, expires_at > now()`, blocker, blocked)
		if err != nil {
			return fmt.Errorf("block: delete requests: %w", err)
		}
		var own, live bool
		_, err = pgx.ForEachRow(rows, []any{&own, &live}, func() error {
			out.CancelledOwn = out.CancelledOwn || own && live
			out.DroppedRequest = out.DroppedRequest || !own && live
			return nil
		})
		if err != nil {
			return fmt.Errorf("block: delete requests: %w", err)
		}
		return nil
	})
	return out, err
}

// UnblockUser deletes blocker's block of blocked, or returns ErrNotBlocked.
func (db *DB) UnblockUser(ctx context.Context, blocker, blocked string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2`, blocker, blocked)
	if err != nil {
		return fmt.Errorf("unblock: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotBlocked
	}
	return nil
}

const peerColumns = `u.id, u.handle, u.ik, u.created_at`

// Friends returns userID's friends, oldest friendship first.
func (db *DB) Friends(ctx context.Context, userID string) ([]Friend, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT `+peerColumns+`, f.since FROM friendships f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = $1 ORDER BY f.since, u.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	var out []Friend
	var f Friend
	_, err = pgx.ForEachRow(rows, []any{&f.ID, &f.Handle, &f.IK, &f.CreatedAt, &f.Since}, func() error {
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	return out, nil
}

// FriendIDs returns the ids of userID's friends, sorted.
func (db *DB) FriendIDs(ctx context.Context, userID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT friend_id FROM friendships WHERE user_id = $1 ORDER BY friend_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list friend ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list friend ids: %w", err)
	}
	return ids, nil
}

// AreFriends reports whether a and b are friends.
func (db *DB) AreFriends(ctx context.Context, a, b string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2)`, a, b).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read friendship: %w", err)
	}
	return ok, nil
}

// FriendRequests returns userID's pending, unexpired requests, oldest first.
func (db *DB) FriendRequests(ctx context.Context, userID string) (incoming, outgoing []FriendRequest, err error) {
	incoming, err = db.requests(ctx, `
		SELECT `+peerColumns+`, r.created_at, r.expires_at FROM friend_requests r JOIN users u ON u.id = r.from_id
		WHERE r.to_id = $1 AND r.expires_at > now() ORDER BY r.created_at, u.id`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("list incoming requests: %w", err)
	}
	outgoing, err = db.requests(ctx, `
		SELECT `+peerColumns+`, r.created_at, r.expires_at FROM friend_requests r JOIN users u ON u.id = r.to_id
		WHERE r.from_id = $1 AND r.expires_at > now() ORDER BY r.created_at, u.id`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("list outgoing requests: %w", err)
	}
	return incoming, outgoing, nil
}

func (db *DB) requests(ctx context.Context, query, userID string) ([]FriendRequest, error) {
	rows, err := db.pool.Query(ctx, query, userID)
	if err != nil {
		return nil, err
	}
	var out []FriendRequest
	var r FriendRequest
	p := &r.Peer
	_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.Handle, &p.IK, &p.CreatedAt, &r.CreatedAt, &r.ExpiresAt}, func() error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// Blocks returns the users userID has blocked, oldest block first.
func (db *DB) Blocks(ctx context.Context, userID string) ([]Block, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT `+peerColumns+`, b.created_at FROM blocks b JOIN users u ON u.id = b.blocked_id
		WHERE b.blocker_id = $1 ORDER BY b.created_at, u.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	var out []Block
	var b Block
	_, err = pgx.ForEachRow(rows, []any{&b.ID, &b.Handle, &b.IK, &b.CreatedAt, &b.Since}, func() error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	return out, nil
}

// PruneFriends deletes expired friend requests and request attempts older
// than rateWindow, and reports how many rows it deleted. It is safe to run
// from several processes at once.
func (db *DB) PruneFriends(ctx context.Context, rateWindow time.Duration) (int64, error) {
	a, err := db.pool.Exec(ctx, `DELETE FROM friend_requests WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("prune friend requests: %w", err)
	}
	b, err := db.pool.Exec(ctx,
		`DELETE FROM friend_request_attempts WHERE at <= now() - make_interval(secs => $1)`, secs(rateWindow))
	if err != nil {
		return a.RowsAffected(), fmt.Errorf("prune request attempts: %w", err)
	}
	return a.RowsAffected() + b.RowsAffected(), nil
}
