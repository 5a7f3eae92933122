// Mayfly envelope v2 in WebCrypto (docs/envelope.md, version 2): a payload
// sealed under a fresh content key, wrapped for every target device with an
// ephemeral X25519 key combined with the device's signed prekey and, when
// the server had one, a one-time prekey (X3DH-style), signed by the sending
// device's key. Byte for byte the Go package schema/envelope (SealV2,
// ParseV2, EnvelopeV2.Open); gateway/internal/web's browser tests check the test
// vectors and both directions of interop.

import * as b64 from "./b64.js";
import { importPrivate, importX25519Public, keyID, listedKey } from "./identity.js";
import {
  KEY_ID_SIZE, KEY_SIZE, NONCE_SIZE, SIG_SIZE, TAG_SIZE, WRAPPED_KEY_SIZE, bytesField, checkID, checkInt, checkVersion, concat, equalBytes, exactMembers, fail, jsonObject,
  lp, random, u32, u64, utf8,
} from "./wire.js";

export const VERSION = 2;
export const MAX_PLAINTEXT = 64 << 10;
export const MAX_ENCODED = 96 << 10;
export const MAX_WRAPS = 10;


const WRAP_INFO = "mayfly envelope v2 wrap";
const AAD_DOMAIN = "mayfly envelope v2 aad";
const SIG_DOMAIN = "mayfly envelope v2 sig";

const subtle = globalThis.crypto.subtle;
const ZERO_NONCE = new Uint8Array(NONCE_SIZE);

function headerBytes(domain, e) {
  return [lp(domain), u32(VERSION), lp(e.from), lp(e.fd), lp(e.to), lp(e.mid), u64(e.ts)];
}

function aad(e) {
  return concat(headerBytes(AAD_DOMAIN, e));
}

function signedBytes(e) {
  const parts = headerBytes(SIG_DOMAIN, e);
  parts.push(u32(e.wraps.length));
  for (const w of e.wraps) parts.push(lp(w.d), lp(w.spk), lp(w.opk), lp(w.epk), lp(w.k));
  parts.push(lp(e.n), lp(e.ct));
  return concat(parts);
}

function gcm(iv, additionalData) {
  const p = { name: "AES-GCM", iv, tagLength: 128 };
  if (additionalData) p.additionalData = additionalData;
  return p;
}

async function dh(priv, pubRaw) {
  let shared;
  try {
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: await importX25519Public(pubRaw) }, priv, 256));
  } catch (err) {
    if (err.kind) throw err;
    fail("key", "X25519 failed (low-order point?)");
  }
  if (shared.every((b) => b === 0)) fail("key", "X25519 shared secret is zero");
  return shared;
}

/**
 * kek derives a wrap's key-encryption key: HKDF-SHA256 over
 * ikm = dh1 || dh2 with salt = E || SPK || OPK (dh2 and OPK only with a
 * one-time prekey). The sender passes the ephemeral private key and the
 * target's prekeys; the reader its prekeys' private keys and E (X25519 is
 * symmetric), so dhs and salt come in already.
 */
async function kek(dhs, salt) {
  const ikm = await subtle.importKey("raw", concat(dhs), "HKDF", false, ["deriveKey"]);
  return subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt, info: utf8.encode(WRAP_INFO) },
    ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** wrap encrypts the content key for one target {d, spk, opk|null}. */
async function wrap(contentKey, t, rnd) {
  const eph = await importPrivate("X25519", rnd(KEY_SIZE), true); // used for this wrap only
  const dhs = [await dh(eph.private, t.spk)];
  const salt = [eph.public, t.spk];
  if (t.opk) {
    dhs.push(await dh(eph.private, t.opk));
    salt.push(t.opk);
  }
  const key = await kek(dhs, concat(salt));
  return {
    d: t.d, spk: await keyID(t.spk), opk: t.opk ? await keyID(t.opk) : new Uint8Array(0), epk: eph.public,
    k: new Uint8Array(await subtle.encrypt(gcm(ZERO_NONCE), key, contentKey)),
  };
}

function checkHeader(h) {
  for (const f of ["from", "fd", "to", "mid"]) checkID(h[f], f);
  checkInt(h.ts, "ts");
}

/**
 * seal encrypts plaintext (Uint8Array, at most MAX_PLAINTEXT bytes) and
 * returns the canonical encoded envelope. header is {from, fd, to, mid, ts}
 * (fd the sending device's id, ts unix ms); dk the sending device's Ed25519
 * private CryptoKey; targets come from verifyBundle of the recipient and of
 * the sender's own other devices, 1 to MAX_WRAPS distinct devices. rnd(n)
 * returns n random bytes; only test vectors replace it. Random bytes are
 * read as docs/envelope.md says: content key, payload nonce, then one
 * ephemeral private key per wrap.
 */
export async function seal(header, dk, targets, plaintext, rnd = random) {
  checkHeader(header);
  if (!(plaintext instanceof Uint8Array)) fail("malformed", "plaintext must be a Uint8Array");
  if (plaintext.length > MAX_PLAINTEXT) fail("too_large", `plaintext ${plaintext.length} bytes, limit ${MAX_PLAINTEXT}`);
  if (targets.length < 1 || targets.length > MAX_WRAPS) fail("malformed", `${targets.length} targets, want 1 to ${MAX_WRAPS}`);
  const e = { v: VERSION, from: header.from, fd: header.fd, to: header.to, mid: header.mid, ts: header.ts, wraps: [] };
  const contentKey = rnd(KEY_SIZE);
  e.n = rnd(NONCE_SIZE);
  for (const t of targets) {
    checkID(t.d, "target device id");
    if (e.wraps.some((w) => w.d === t.d)) fail("malformed", "target device given twice");
    e.wraps.push(await wrap(contentKey, t, rnd));
  }
  const ck = await subtle.importKey("raw", contentKey, "AES-GCM", false, ["encrypt"]);
  contentKey.fill(0);
  e.ct = new Uint8Array(await subtle.encrypt(gcm(e.n, aad(e)), ck, plaintext));
  e.sig = new Uint8Array(await subtle.sign({ name: "Ed25519" }, dk, signedBytes(e)));
  return encode(e);
}

/** encode returns the canonical JSON of a parsed envelope (Go's MarshalJSON). */
export function encode(e) {
  return JSON.stringify({
    v: VERSION, from: e.from, fd: e.fd, to: e.to, mid: e.mid, ts: e.ts,
    wraps: e.wraps.map((w) => ({ d: w.d, spk: b64.encode(w.spk), opk: b64.encode(w.opk), epk: b64.encode(w.epk), k: b64.encode(w.k) })),
    n: b64.encode(e.n), ct: b64.encode(e.ct), sig: b64.encode(e.sig),
  });
}

const MEMBERS = ["v", "from", "fd", "to", "mid", "ts", "wraps", "n", "ct", "sig"];
const WRAP_MEMBERS = ["d", "spk", "opk", "epk", "k"];

function parseWrap(w, i) {
  exactMembers(w, WRAP_MEMBERS, `wraps[${i}]`);
  checkID(w.d, `wraps[${i}].d`);
  const opk = bytesField(w.opk, undefined, `wraps[${i}].opk`);
  if (opk.length !== 0 && opk.length !== KEY_ID_SIZE) fail("malformed", `wraps[${i}].opk must be 0 or 8 bytes`);
  return {
    d: w.d, spk: bytesField(w.spk, KEY_ID_SIZE, `wraps[${i}].spk`), opk,
    epk: bytesField(w.epk, KEY_SIZE, `wraps[${i}].epk`), k: bytesField(w.k, WRAPPED_KEY_SIZE, `wraps[${i}].k`),
  };
}

/**
 * parse checks an envelope's shape as the server does (Go's ParseV2) and
 * returns it with byte fields decoded. It does not verify the signature.
 * A v1 envelope is a "version" error.
 */
export function parse(input) {
  const o = jsonObject(input, MAX_ENCODED, "envelope");
  checkVersion(o, VERSION);
  exactMembers(o, MEMBERS, "envelope");
  for (const f of ["from", "fd", "to", "mid"]) if (typeof o[f] !== "string") fail("malformed", `${f} is not a string`);
  checkInt(o.ts, "ts");
  checkHeader(o);
  if (!Array.isArray(o.wraps) || o.wraps.length < 1 || o.wraps.length > MAX_WRAPS) fail("malformed", `want 1 to ${MAX_WRAPS} wraps`);
  const wraps = [];
  for (const [i, w] of o.wraps.entries()) {
    const pw = parseWrap(w, i);
    if (wraps.some((x) => x.d === pw.d)) fail("malformed", `wraps[${i}]: device given twice`);
    wraps.push(pw);
  }
  const n = bytesField(o.n, NONCE_SIZE, "n");
  const sig = bytesField(o.sig, SIG_SIZE, "sig");
  const ct = bytesField(o.ct, undefined, "ct");
  if (ct.length < TAG_SIZE) fail("malformed", "ct shorter than its tag");
  if (ct.length > MAX_PLAINTEXT + TAG_SIZE) fail("too_large", "ct over the payload limit");
  return { v: VERSION, from: o.from, fd: o.fd, to: o.to, mid: o.mid, ts: o.ts, wraps, n, ct, sig };
}

/**
 * verify checks e's signature with the sending device's key, looked up by
 * e.fd in senderList (the sender's device list, verified against their
 * pinned identity key by the caller). An unlisted device (revoked or
 * unknown) and a bad signature are "signature" errors.
 */
export async function verify(e, senderList) {
  if (senderList.uid !== e.from) fail("signature", "device list of another user");
  const dk = listedKey(senderList, e.fd);
  if (!dk) fail("signature", "sending device is not in the sender's device list");
  const key = await subtle.importKey("raw", dk, { name: "Ed25519" }, true, ["verify"]);
  if (!(await subtle.verify({ name: "Ed25519" }, key, e.sig, signedBytes(e)))) fail("signature", "signature does not verify");
}

/** wrapFor returns e's wrap for device id, or null. */
export function wrapFor(e, id) {
  return e.wraps.find((w) => w.d === id) || null;
}

/**
 * open parses input, verifies it against senderList (see verify), then
 * unwraps the content key of device deviceID's wrap and decrypts the
 * payload. prekey(kind, keyID) returns the device's private prekey
 * {private: CryptoKey, public: Uint8Array} of kind "spk" or "opk" with that
 * 8-byte key id, or null when it is gone (deleted after a burn or expired):
 * then the message is "no_wrap", never guessed at. It returns
 * {header: {from, fd, to, mid, ts}, plaintext, wrap} where wrap names the
 * prekeys used ({spk, opk} key ids, opk empty when none), so the caller can
 * delete the one-time prekey once the message burned.
 */
export async function open(input, senderList, deviceID, prekey) {
  const e = parse(input);
  await verify(e, senderList);
  const w = wrapFor(e, deviceID);
  if (!w) fail("no_wrap", "no wrap for this device");
  const spk = await prekey("spk", w.spk);
  const opk = w.opk.length > 0 ? await prekey("opk", w.opk) : null;
  if (!spk || (w.opk.length > 0 && !opk)) fail("no_wrap", "the prekey this wrap needs is gone");
  if (!equalBytes(await keyID(spk.public), w.spk) || (opk && !equalBytes(await keyID(opk.public), w.opk))) {
    fail("no_wrap", "prekey is not the one the wrap names");
  }
  let contentKey, plaintext;
  try {
    const dhs = [await dh(spk.private, w.epk)];
    const salt = [w.epk, spk.public];
    if (opk) {
      dhs.push(await dh(opk.private, w.epk));
      salt.push(opk.public);
    }
    contentKey = new Uint8Array(await subtle.decrypt(gcm(ZERO_NONCE), await kek(dhs, concat(salt)), w.k));
  } catch {
    fail("decrypt", "content key does not decrypt");
  }
  const ck = await subtle.importKey("raw", contentKey, "AES-GCM", false, ["decrypt"]);
  contentKey.fill(0);
  try {
    plaintext = new Uint8Array(await subtle.decrypt(gcm(e.n, aad(e)), ck, e.ct));
  } catch {
    fail("decrypt", "payload does not decrypt");
  }
  return { header: { from: e.from, fd: e.fd, to: e.to, mid: e.mid, ts: e.ts }, plaintext, wrap: { spk: w.spk, opk: w.opk } };
}
