// Device linking in identity v2 (docs/envelope.md, "Link a device";
// docs/api.md, "Device linking"): a new device shows a code that commits to
// its ephemeral link key and its own device key; the primary device (the
// one holding the identity key) checks the code against the keys the
// server hands out, signs a device list that adds the device key, and
// seals who the user is to the link key. No private key moves. The same
// bytes as the Go client (gateway/client/link.go).

import * as api from "./api.js";
import * as b64 from "./b64.js";
import * as identity from "./identity.js";
import { concat, fail, random, utf8 } from "./wire.js";

const LINK_CODE_CONTEXT = "mayfly link v2";
const BUNDLE_INFO = "mayfly link v1 bundle";
const CODE_LEN = 10;
const subtle = globalThis.crypto.subtle;

/** linkCode returns the 10-character code committing to the link key and device key (raw). */
export async function linkCode(linkPublic, deviceKey) {
  const d = new Uint8Array(await subtle.digest("SHA-256", concat([utf8.encode(LINK_CODE_CONTEXT), linkPublic, deviceKey])));
  return identity.base32(d.subarray(0, 7)).toUpperCase().slice(0, CODE_LEN);
}

/** normalizeCode returns a typed code in canonical form (upper case, no dashes or spaces), or null. */
export function normalizeCode(s) {
  const c = String(s).replace(/[-\s]/g, "").toUpperCase();
  return /^[A-Z2-7]{10}$/.test(c) ? c : null;
}

/** formatCode returns a code as people read it: "ABCDE-FGHIJ". */
export const formatCode = (c) => (c.length === CODE_LEN ? c.slice(0, 5) + "-" + c.slice(5) : c);

async function bundleKey(priv, peerPublic, epk, to) {
  const shared = await subtle.deriveBits({ name: "X25519", public: await identity.importX25519Public(peerPublic) }, priv, 256);
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: concat([epk, to]), info: utf8.encode(BUNDLE_INFO) },
    ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** sealBundle encrypts the JSON of plain to the link key to (raw X25519). */
async function sealBundle(to, plain) {
  const eph = await identity.generateX25519();
  const key = await bundleKey(eph.private, to, eph.public, to);
  const n = random(12);
  const ct = await subtle.encrypt({ name: "AES-GCM", iv: n, tagLength: 128 }, key, utf8.encode(JSON.stringify(plain)));
  return { epk: b64.encode(eph.public), n: b64.encode(n), ct: b64.encode(ct) };
}

/** openBundle decrypts a sealed bundle with the link key pair and returns {user_id, handle}. */
async function openBundle(link, b) {
  let plain;
  try {
    const epk = b64.decode(b.epk, 32);
    const key = await bundleKey(link.private, epk, epk, link.public);
    plain = JSON.parse(new TextDecoder().decode(await subtle.decrypt({ name: "AES-GCM", iv: b64.decode(b.n, 12), tagLength: 128 }, key, b64.decode(b.ct))));
  } catch {
    fail("decrypt", "the link answer was not sealed to this device");
  }
  if (!plain || plain.v !== 2 || typeof plain.user_id !== "string" || typeof plain.handle !== "string") fail("malformed", "unknown link answer");
  return plain;
}

/**
 * updateOwnList signs and publishes the user's next device list: edit
 * (maybe async) applied to the current list's keys (raw); edit returns
 * null for no change, and then nothing is published and updateOwnList
 * returns null. me must hold the identity key (the primary device); the
 * current list must verify under it.
 */
export async function updateOwnList(me, edit) {
  if (!me.ik) throw Object.assign(new Error("only the primary device (the one holding the identity key) can change the device list"), { code: "forbidden" });
  const raw = await api.deviceList(me.userID);
  let ver = 0, keys = [];
  if (raw) {
    const cur = await identity.parseDeviceList(raw);
    await identity.verifyDeviceList(cur, me.userID, me.ik.public);
    ver = cur.ver;
    keys = cur.devices.map((d) => d.key);
  }
  const next = await edit(keys);
  if (!next) return null;
  const l = await identity.signDeviceList(me.userID, ver + 1, Date.now(), next, me.ik);
  await api.publishList(identity.encodeDeviceList(l));
  return l;
}

/**
 * approve adds the device that shows code to the account, on the primary
 * device: client is its api.Client, me its identity record. It refuses a
 * code the server's keys do not hash to (a substituted key), code
 * "link_mismatch".
 */
export async function approve(client, me, code) {
  const c = normalizeCode(code);
  if (!c) throw Object.assign(new Error("a link code is 10 letters and digits, like ABCDE-FGHIJ"), { code: "not_found" });
  const info = await client.linkInfo(c);
  const pub = b64.decode(info.public_key, 32);
  const dk = b64.decode(info.device_key, 32);
  if (info.code !== c || (await linkCode(pub, dk)) !== c) {
    throw Object.assign(new Error("the server's keys do not match the code; nothing was approved"), { code: "link_mismatch" });
  }
  await updateOwnList(me, (keys) => {
    if (keys.some((k) => b64.encode(k) === info.device_key)) return null;
    if (keys.length >= identity.MAX_DEVICES) throw Object.assign(new Error(`at most ${identity.MAX_DEVICES} devices; revoke one first`), { code: "device_limit" });
    return [...keys, dk];
  });
  await client.approveLink(c, await sealBundle(pub, { v: 2, user_id: me.userID, handle: me.handle }));
}

/** PendingLink is a link started on this (new) device; show code, then wait(). */
export class PendingLink {
  /** start makes the device key and the link key and asks the server for a link request. */
  static async start() {
    const l = new PendingLink();
    l.dk = await identity.generateSigningKey(false);
    l.link = await identity.generateX25519(false);
    const created = await api.startLink(l.link.public, l.dk.public);
    if (created.code !== await linkCode(l.link.public, l.dk.public)) fail("key", "the server's code is not the key's");
    l.code = created.code;
    l.secret = created.secret;
    l.expiresAt = Date.parse(created.expires_at);
    l.stopped = false;
    return l;
  }

  /**
   * wait polls every second until the primary approves, then checks that
   * the account's list names this device and is signed by the identity key
   * it names (trusted on first use; its fingerprint is shown). It returns
   * the new identity record (no identity key: this is not the primary).
   */
  async wait() {
    while (!this.stopped) {
      const st = await api.linkStatus(this.code, this.secret);
      if (st.status === "approved" && st.bundle) {
        const who = await openBundle(this.link, st.bundle);
        if (who.user_id !== st.user_id || who.handle !== st.handle) fail("malformed", "the link answer names another user than the approver");
        const l = await identity.parseDeviceList(await api.deviceList(who.user_id));
        await identity.verifyDeviceList(l, who.user_id, l.ik);
        const deviceID = await identity.deviceID(this.dk.public);
        if (!identity.listedKey(l, deviceID)) fail("identity", "the account's device list does not name this device");
        return {
          v: 2, userID: who.user_id, handle: who.handle, deviceID, dk: this.dk, ik: null, ikPublic: l.ik,
          fingerprint: await identity.identityFingerprint(l.ik),
        };
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw Object.assign(new Error("linking cancelled"), { code: "cancelled" });
  }
}
