-- Prekey claim quota (docs/envelope.md, "One-time prekeys"), kept here so
-- that every transport (HTTP, NATS) and every mayflyd process counts the
-- same claims. store/identity.go owns every query on these tables.

-- Claims of one user's bundle by one claimer in the current fixed window.
CREATE TABLE claim_windows (
    claimer_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    claims       integer NOT NULL,
    PRIMARY KEY (claimer_id, target_id)
);

-- Which claimer took a one-time prekey of which device, and when; kept for
-- as long as a message sealed with it can live (65 minutes), to hold the
-- last OPKs of a pool in reserve for claimers that took few.
CREATE TABLE opk_claims (
    device_id  text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    claimer_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX opk_claims_by_device ON opk_claims (device_id, claimer_id, claimed_at);
