-- Device linking (docs/api.md, "Device linking"): a new device asks to be
-- linked with an ephemeral X25519 public key; a logged-in device of the user
-- approves it with the identity keys sealed to that key; the new device
-- fetches the sealed bundle once with the secret it got at creation.
-- store/links.go owns every query on this table. The server never holds the
-- keys in the clear: bundle_ct is AES-GCM under a key only the two devices
-- can derive. Rows expire after ten minutes and are deleted an hour later,
-- or as soon as the bundle is fetched.
CREATE TABLE link_requests (
    code           text PRIMARY KEY CHECK (length(code) = 10),
    public_key     bytea NOT NULL CHECK (length(public_key) = 32),
    secret_hash    bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    approved_by    text REFERENCES users (id) ON DELETE CASCADE,
    approved_device text,
    approved_at    timestamptz,
    bundle_epk     bytea CHECK (length(bundle_epk) = 32),
    bundle_nonce   bytea CHECK (length(bundle_nonce) = 12),
    bundle_ct      bytea CHECK (length(bundle_ct) BETWEEN 16 AND 4096),
    CHECK ((approved_by IS NULL) = (bundle_ct IS NULL))
);
CREATE INDEX link_requests_expires_idx ON link_requests (expires_at);
