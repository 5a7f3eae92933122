// Account flows of identity v2 (docs/envelope.md, "Devices: register,
// link, revoke, reset"; docs/web.md): registering makes the identity key
// (IK) and this browser's device key (DK) as non-extractable CryptoKeys,
// registers the IK, publishes the first device list naming the DK, and
// logs in with the DK. This browser is then the primary device: the only
// one that holds the IK and can add or revoke devices.

import * as api from "./api.js";
import * as b64 from "./b64.js";
import * as identity from "./identity.js";
import * as keystore from "./keystore.js";
import { updateOwnList } from "./link.js";
import * as prekeys from "./prekeys.js";

/** register creates the account and logs this browser in: [identity record, session]. */
export async function register(handle, deviceName) {
  const ik = await identity.generateSigningKey(false);
  const dk = await identity.generateSigningKey(false);
  const user = await api.register(handle, ik.public);
  const fingerprint = await identity.identityFingerprint(ik.public);
  if (user.ik !== b64.encode(ik.public) || user.fingerprint !== fingerprint) {
    throw Object.assign(new Error("the server holds another identity key for this account"), { code: "untrusted_keys" });
  }
  const id = {
    v: 2, userID: user.user_id, handle: user.handle, deviceID: await identity.deviceID(dk.public),
    dk, ik, ikPublic: ik.public, fingerprint,
  };
  await keystore.saveIdentity(id);
  const l = await identity.signDeviceList(id.userID, 1, Date.now(), [dk.public], ik);
  await api.publishList(identity.encodeDeviceList(l));
  return [id, await withPrekeys(id, await api.login(id.handle, id, deviceName))];
}

/** withPrekeys brings the device's prekeys up to date (so friends can seal to it at once) and returns session. */
async function withPrekeys(id, session) {
  await prekeys.maintain(new api.Client(session), { ...id, userID: session.userID, deviceID: session.deviceID });
  return session;
}

/**
 * login starts a session with the device key. On the primary, a device key
 * missing from the list (an identity made before v2) is added first.
 */
export async function login(id, deviceName) {
  try {
    return await withPrekeys(id, await api.login(id.handle, id, deviceName));
  } catch (err) {
    if (err.code !== "bad_signature" || !id.ik) throw err;
  }
  await updateOwnList(id, (keys) => {
    if (keys.some((k) => b64.encode(k) === b64.encode(id.dk.public))) return null;
    return [...keys, id.dk.public];
  });
  return withPrekeys(id, await api.login(id.handle, id, deviceName));
}

/**
 * upgrade turns an identity record of v1 (one key pair for the account)
 * into v2, as docs/envelope.md ("Migration from v1") says: the v1 signing
 * key becomes the IK, a new DK is made; login then lists it. A v2 record
 * is returned as it is.
 */
export async function upgrade(old) {
  if (!old || old.v === 2) return old;
  const dk = await identity.generateSigningKey(false);
  const id = {
    v: 2, userID: old.userID, handle: old.handle, deviceID: await identity.deviceID(dk.public), dk,
    ik: { private: old.signPrivate, public: old.signPublic }, ikPublic: old.signPublic,
    fingerprint: await identity.identityFingerprint(old.signPublic),
  };
  await keystore.saveIdentity(id);
  return id;
}

/**
 * revokeDevice revokes one of the user's devices for good: on the primary
 * it signs a list without the device (which the server treats as the
 * revocation, its sessions end and its socket is closed); otherwise, or
 * when the device is not listed, it locks the device out at the server
 * (DELETE /v1/devices/{id}), which is all a linked device can do. Either
 * way the device can never log in again.
 */
export async function revokeDevice(client, id, deviceID) {
  let dropped = null;
  if (id.ik) {
    dropped = await updateOwnList(id, async (keys) => {
      const keep = [];
      for (const k of keys) if ((await identity.deviceID(k)) !== deviceID) keep.push(k);
      return keep.length === keys.length || keep.length === 0 ? null : keep;
    });
  }
  if (!dropped) await client.revokeDevice(deviceID); // a list without it revoked it already
}
