-- Accounts: a handle and two public keys made on the device. No phone, no e-mail.
CREATE TABLE users (
    id              text PRIMARY KEY,
    handle          text NOT NULL,
    sign_key        bytea NOT NULL CHECK (length(sign_key) = 32),
    kex_key         bytea NOT NULL CHECK (length(kex_key) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    keys_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_handle_key ON users (lower(handle));

-- Devices: at most five active per user (enforced by the store under a row lock).
-- generation is bumped to end every session of the device at once.
CREATE TABLE devices (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    generation   integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX devices_active_name_key ON devices (user_id, name) WHERE revoked_at IS NULL;
CREATE INDEX devices_user_idx ON devices (user_id);

-- Single-use login challenges.
CREATE TABLE login_challenges (
    id         text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    nonce      bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX login_challenges_user_idx ON login_challenges (user_id);

-- Refresh tokens, stored only as SHA-256 hashes. A chain is all tokens of one
-- device generation; reusing a used token bumps the generation, ending the chain.
CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
    device_id  text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_device_idx ON refresh_tokens (device_id);
