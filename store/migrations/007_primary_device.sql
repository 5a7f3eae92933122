-- Who may do what on an account (docs/envelope.md, "Devices: register, link,
-- revoke, reset"). The primary device holds the identity key: it alone
-- revokes other devices and resets the identity at once. A linked device may
-- revoke only itself, and its identity reset waits (identity_resets) until
-- not_before, while every other device is told and the primary can cancel.
-- store/identity.go and store/resets.go own every query on these columns.
ALTER TABLE users ADD COLUMN primary_device text;

-- The registering device is the first one its lists name (a linked device is
-- appended; an identity reset lists the resetting device first).
UPDATE users SET primary_device = convert_from(device_list, 'UTF8')::jsonb -> 'devices' -> 0 ->> 'id'
WHERE device_list IS NOT NULL;

-- At most one pending identity reset per user: the linked device that asked,
-- the new identity key it will hold, and when it may complete.
CREATE TABLE identity_resets (
    user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    device_id    text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ik           bytea NOT NULL CHECK (length(ik) = 32),
    requested_at timestamptz NOT NULL DEFAULT now(),
    not_before   timestamptz NOT NULL
);
