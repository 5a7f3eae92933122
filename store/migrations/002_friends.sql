-- The friend graph. store/friends.go owns every query on these tables; the
-- rules (at most 20 friends, 20 pending outgoing requests, 20 request attempts
-- an hour, blocks) are enforced there under row locks on the users involved.

-- Pending friend requests, at most one per ordered pair. A request expires at
-- expires_at (14 days after it was made by default): every query ignores
-- expired rows, and they are deleted when the pair is next touched and by the
-- periodic prune. A request is deleted when it is accepted, declined,
-- cancelled, or when either side blocks the other.
CREATE TABLE friend_requests (
    from_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (from_id, to_id),
    CHECK (from_id <> to_id)
);
CREATE INDEX friend_requests_to_idx ON friend_requests (to_id);
CREATE INDEX friend_requests_expires_idx ON friend_requests (expires_at);

-- Friendships, stored as two mirror rows (a,b) and (b,a) written and deleted
-- together, so a user's friends and their count are one index range on the
-- primary key, from either side. The deferred self-reference makes the pair
-- an invariant: a transaction that leaves a row without its mirror fails at
-- commit. The primary key keeps each direction, hence the pair, unique.
CREATE TABLE friendships (
    user_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    since     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id),
    CONSTRAINT friendships_mirror_fkey FOREIGN KEY (friend_id, user_id)
        REFERENCES friendships (user_id, friend_id) DEFERRABLE INITIALLY DEFERRED
);

-- Blocks: blocker does not accept requests (or, later, messages and presence)
-- from blocked. Either side may block the other; each direction is one row.
CREATE TABLE blocks (
    blocker_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id);

-- Friend request attempts in the rate-limit window (one hour), per sender.
-- Kept in Postgres so the limit holds across restarts and across gateway
-- processes; rows older than the window are deleted as the sender makes new
-- attempts and by the periodic prune.
CREATE TABLE friend_request_attempts (
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX friend_request_attempts_user_idx ON friend_request_attempts (user_id, at);
CREATE INDEX friend_request_attempts_at_idx ON friend_request_attempts (at);
