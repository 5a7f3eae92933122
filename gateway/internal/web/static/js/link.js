// Device linking, v3 (docs/envelope.md, "Link a device"; docs/api.md,
// "Device linking"): a new device shows a 25-character code, a lookup part
// the server knows and a secret part it never sees; the lookup part commits
// to the secret, the device's ephemeral link key and its own device key.
// The primary device (the one holding the identity key) checks the code
// against the keys the server hands out, signs a device list that adds the
// device key, and seals who the user is and the identity key to the link
// key, keyed with the secret too. No private key moves, and a server that
// substitutes keys either way is caught. The same bytes as the Go client
// (gateway/client/link.go; vectors in schema/testdata/link-v3-vectors.json).

import * as api from "./api.js";
import * as b64 from "./b64.js";
import * as identity from "./identity.js";
import { concat, fail, lp, random, utf8 } from "./wire.js";

const LINK_CODE_CONTEXT = "mayfly link v3 code";
const BUNDLE_INFO = "mayfly link v3 answer";
const CODE_LEN = 10;
const SECRET_LEN = 15;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const subtle = globalThis.crypto.subtle;

/** newSecret returns a fresh secret part: 15 random base32 characters (75 bits). */
export function newSecret() {
  return Array.from(random(SECRET_LEN), (b) => ALPHABET[b & 31]).join("");
}

/** linkCode returns the 10-character lookup part committing to the secret, the link key and the device key (raw). */
export async function linkCode(secret, linkPublic, deviceKey) {
  const d = new Uint8Array(await subtle.digest("SHA-256", concat([lp(LINK_CODE_CONTEXT), lp(secret), lp(linkPublic), lp(deviceKey)])));
  return identity.base32(d.subarray(0, 7)).toUpperCase().slice(0, CODE_LEN);
}

/** splitCode returns {lookup, secret} of a typed 25-character code (dashes and spaces ignored), or null. */
export function splitCode(s) {
  const c = String(s).replace(/[-\s]/g, "").toUpperCase();
  return /^[A-Z2-7]{25}$/.test(c) ? { lookup: c.slice(0, CODE_LEN), secret: c.slice(CODE_LEN) } : null;
}

/** formatCode returns a code as people read it: groups of five joined by dashes. */
export const formatCode = (c) => (c.length % 5 === 0 ? c.match(/.{5}/g).join("-") : c);

async function bundleKey(priv, peerPublic, epk, to, secret) {
  const shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: await identity.importX25519Public(peerPublic) }, priv, 256));
  const ikm = await subtle.importKey("raw", concat([shared, utf8.encode(secret)]), "HKDF", false, ["deriveKey"]);
  return subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: concat([epk, to]), info: utf8.encode(BUNDLE_INFO) },
    ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** sealBundle encrypts the JSON of plain to the link key to (raw X25519), keyed with secret too. */
async function sealBundle(to, secret, plain) {
  const eph = await identity.generateX25519();
  const key = await bundleKey(eph.private, to, eph.public, to, secret);
  const n = random(12);
  const ct = await subtle.encrypt({ name: "AES-GCM", iv: n, tagLength: 128 }, key, utf8.encode(JSON.stringify(plain)));
  return { epk: b64.encode(eph.public), n: b64.encode(n), ct: b64.encode(ct) };
}

/** openBundle decrypts a sealed bundle with the link key pair and the secret; returns {user_id, handle, ik (raw)}. */
export async function openBundle(link, secret, b) {
  let plain;
  try {
    const epk = b64.decode(b.epk, 32);
    const key = await bundleKey(link.private, epk, epk, link.public, secret);
    plain = JSON.parse(new TextDecoder().decode(await subtle.decrypt({ name: "AES-GCM", iv: b64.decode(b.n, 12), tagLength: 128 }, key, b64.decode(b.ct))));
  } catch {
    fail("decrypt", "the link answer was not sealed to this device with its code");
  }
  if (!plain || plain.v !== 3 || typeof plain.user_id !== "string" || typeof plain.handle !== "string" || typeof plain.ik !== "string") {
    fail("malformed", "unknown link answer");
  }
  return { ...plain, ik: b64.decode(plain.ik, 32) };
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
 * code the server's keys do not hash to with the code's secret (a
 * substituted key), code "link_mismatch".
 */
export async function approve(client, me, code) {
  const c = splitCode(code);
  if (!c) throw Object.assign(new Error("a link code is 25 letters and digits, like ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"), { code: "not_found" });
  const info = await client.linkInfo(c.lookup);
  const pub = b64.decode(info.public_key, 32);
  const dk = b64.decode(info.device_key, 32);
  if (info.code !== c.lookup || (await linkCode(c.secret, pub, dk)) !== c.lookup) {
    throw Object.assign(new Error("the server's keys do not match the code; nothing was approved"), { code: "link_mismatch" });
  }
  await updateOwnList(me, (keys) => {
    if (keys.some((k) => b64.encode(k) === info.device_key)) return null;
    if (keys.length >= identity.MAX_DEVICES) throw Object.assign(new Error(`at most ${identity.MAX_DEVICES} devices; revoke one first`), { code: "device_limit" });
    return [...keys, dk];
  });
  const plain = { v: 3, user_id: me.userID, handle: me.handle, ik: b64.encode(me.ik.public) };
  await client.approveLink(c.lookup, await sealBundle(pub, c.secret, plain));
}

/** PendingLink is a link started on this (new) device; show code, then wait(). */
export class PendingLink {
  /** start makes the device key and the link key and asks the server for a link request. */
  static async start() {
    const l = new PendingLink();
    l.dk = await identity.generateSigningKey(false);
    l.link = await identity.generateX25519(false);
    l.pass = newSecret();
    const code = await linkCode(l.pass, l.link.public, l.dk.public);
    const created = await api.startLink(l.link.public, l.dk.public, code);
    if (created.code !== code) fail("key", "the server stored another code");
    l.code = created.code;
    l.shown = code + l.pass;
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
        const who = await openBundle(this.link, this.pass, st.bundle);
        if (who.user_id !== st.user_id || who.handle !== st.handle) fail("malformed", "the link answer names another user than the approver");
        const l = await identity.parseDeviceList(await api.deviceList(who.user_id));
        await identity.verifyDeviceList(l, who.user_id, who.ik);
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
