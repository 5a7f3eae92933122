-- Identity v2 (docs/envelope.md, version 2): an account identity key (IK)
-- signs the list of the account's device keys; each device has its own
-- signing key and prekeys. The v1 signing key becomes the IK; the shared v1
-- X25519 key is dropped. Every v1 device is revoked, because all of an
-- account's v1 devices held the same keys: each logs in anew with a device
-- key listed by the IK.
ALTER TABLE users RENAME COLUMN sign_key TO ik;
ALTER TABLE users DROP COLUMN kex_key;
-- The newest signed device list (canonical JSON) and its version; 0 and
-- NULL until the first list is published.
ALTER TABLE users ADD COLUMN list_version bigint NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN device_list bytea CHECK (length(device_list) <= 2048);

UPDATE devices SET revoked_at = now(), generation = generation + 1 WHERE revoked_at IS NULL;
DELETE FROM refresh_tokens;
-- A v2 device's id is derived from its signing key (envelope.DeviceID), and
-- its row is made when a list naming it is stored. Names are labels only.
ALTER TABLE devices ADD COLUMN sign_key bytea CHECK (length(sign_key) = 32);
DROP INDEX devices_active_name_key;

-- Device keys that left a user's list or were locked: never listed again.
CREATE TABLE revoked_device_keys (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sign_key   bytea NOT NULL CHECK (length(sign_key) = 32),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, sign_key)
);

-- Signed prekeys: one current SPK and up to 100 unclaimed OPKs per device,
-- each the canonical signed JSON the device uploaded. A claim deletes the
-- OPK it hands out.
CREATE TABLE prekeys (
    device_id  text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('spk', 'opk')),
    kid        bytea NOT NULL CHECK (length(kid) = 8),
    body       bytea NOT NULL CHECK (length(body) <= 512),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, kid)
);
CREATE UNIQUE INDEX prekeys_one_spk ON prekeys (device_id) WHERE kind = 'spk';

-- A v2 link request carries the new device's signing key too; the code
-- commits to both keys. v1 requests (ten minutes at most) are dropped.
DELETE FROM link_requests;
ALTER TABLE link_requests ADD COLUMN device_key bytea NOT NULL CHECK (length(device_key) = 32);
