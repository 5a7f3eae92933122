// Mayfly envelope v1 in WebCrypto: seal, parse, verify, open, fingerprints
// and safety numbers. Byte for byte the format of docs/envelope.md and the
// Go package schema/envelope; gateway/web's browser test checks both
// directions (Go seals, JS opens; JS seals, Go opens).
//
// Keys are CryptoKey objects. A user's identity is
//   { signPrivate: CryptoKey (Ed25519, "sign"),
//     kexPrivate:  CryptoKey (X25519, "deriveBits"),
//     signPublic:  Uint8Array(32), kexPublic: Uint8Array(32) }
// and the private keys may be non-extractable: nothing here exports them.

import * as b64 from "./b64.js";
import { importPrivate } from "./identity.js";
import {
  KEY_ID_SIZE, KEY_SIZE, NONCE_SIZE, SIG_SIZE, TAG_SIZE, WRAPPED_KEY_SIZE,
  bytesField, concat, digits, equalBytes, exactMembers, fail, groups, lp, random, u32, u64, utf8,
} from "./wire.js";

export const VERSION = 1;
export const MAX_PLAINTEXT = 64 << 10;
export const MAX_ENCODED = 96 << 10;
export const MAX_ID_LEN = 64;
export const MAX_SENT_AT = 2 ** 53 - 1;


const WRAP_INFO = "mayfly envelope v1 wrap";
const AAD_DOMAIN = "mayfly envelope v1 aad";
const SIG_DOMAIN = "mayfly envelope v1 sig";
const FINGERPRINT_DOMAIN = "mayfly fingerprint v1";

const subtle = globalThis.crypto.subtle;
const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

export { EnvelopeError } from "./wire.js";

function headerBytes(domain, e) {
  return [lp(domain), u32(VERSION), lp(e.from), lp(e.to), lp(e.mid), u64(e.ts)];
}

/** aad returns the associated data of the payload AEAD. */
function aad(e) {
  return concat(headerBytes(AAD_DOMAIN, e));
}

/** signedBytes returns SIG_INPUT: every field except the signature. */
function signedBytes(e) {
  const parts = headerBytes(SIG_DOMAIN, e);
  parts.push(u32(e.wraps.length));
  for (const w of e.wraps) parts.push(lp(w.kid), lp(w.epk), lp(w.n), lp(w.k));
  parts.push(lp(e.n), lp(e.ct));
  return concat(parts);
}

/** keyID returns the 8-byte key id of a raw X25519 public key. */
export async function keyID(kexPublic) {
  return new Uint8Array(await subtle.digest("SHA-256", kexPublic)).slice(0, KEY_ID_SIZE);
}

async function importX25519Public(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_SIZE) fail("key", "X25519 public key must be 32 bytes");
  return subtle.importKey("raw", raw, { name: "X25519" }, true, []);
}

/** importSignPublic imports a raw Ed25519 public key for verifying. */
export async function importSignPublic(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_SIZE) fail("key", "Ed25519 public key must be 32 bytes");
  return subtle.importKey("raw", raw, { name: "Ed25519" }, true, ["verify"]);
}

/** x25519 returns the 32-byte shared secret; a low-order peer key is a key error. */
async function x25519(priv, pubKey) {
  let shared;
  try {
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pubKey }, priv, 256));
  } catch (err) {
    fail("key", "X25519 failed (low-order point?): " + err.message);
  }
  if (shared.every((b) => b === 0)) fail("key", "X25519 shared secret is zero");
  return shared;
}

/** wrappingKey derives HKDF-SHA256(shared, salt = epk || recipient, info). */
async function wrappingKey(shared, epk, recipient) {
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: concat([epk, recipient]), info: utf8.encode(WRAP_INFO) },
    ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function gcm(iv, additionalData) {
  const p = { name: "AES-GCM", iv, tagLength: 128 };
  if (additionalData) p.additionalData = additionalData;
  return p;
}

/** wrapContentKey encrypts the raw content key for one X25519 public key. */
async function wrapContentKey(contentKey, recipientRaw) {
  const recipient = await importX25519Public(recipientRaw);
  const eph = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const epk = new Uint8Array(await subtle.exportKey("raw", eph.publicKey));
  const shared = await x25519(eph.privateKey, recipient);
  const kek = await wrappingKey(shared, epk, recipientRaw);
  const n = random(NONCE_SIZE);
  const k = new Uint8Array(await subtle.encrypt(gcm(n), kek, contentKey));
  return { kid: await keyID(recipientRaw), epk, n, k };
}

/**
 * checkHeader validates {from, to, mid, ts} the way Go's Header.Validate
 * does (ids of 1-64 [A-Za-z0-9_-], ts an integer in [1, 2^53-1]).
 */
function checkHeader(h) {
  for (const f of ["from", "to", "mid"]) {
    if (typeof h[f] !== "string" || !idPattern.test(h[f])) fail("malformed", `${f} must be 1-64 characters of [A-Za-z0-9_-]`);
  }
  if (!Number.isSafeInteger(h.ts) || h.ts < 1 || h.ts > MAX_SENT_AT) fail("malformed", "ts out of range");
}

/**
 * seal encrypts plaintext (Uint8Array, at most MAX_PLAINTEXT bytes) from
 * header.from to header.to and returns the encoded envelope as a string.
 * header is {from, to, mid, ts} with ts in unix milliseconds; sender is the
 * sender's identity (see the top of this file); recipientKex is the
 * recipient's raw X25519 public key. wraps[0] is for the recipient, wraps[1]
 * for the sender's own devices.
 */
export async function seal(header, sender, recipientKex, plaintext) {
  checkHeader(header);
  if (!(plaintext instanceof Uint8Array)) fail("malformed", "plaintext must be a Uint8Array");
  if (plaintext.length > MAX_PLAINTEXT) fail("too_large", `plaintext ${plaintext.length} bytes, limit ${MAX_PLAINTEXT}`);
  const contentKey = random(KEY_SIZE);
  const e = { v: VERSION, from: header.from, to: header.to, mid: header.mid, ts: header.ts };
  e.wraps = [await wrapContentKey(contentKey, recipientKex), await wrapContentKey(contentKey, sender.kexPublic)];
  e.n = random(NONCE_SIZE);
  const ck = await subtle.importKey("raw", contentKey, "AES-GCM", false, ["encrypt"]);
  contentKey.fill(0);
  e.ct = new Uint8Array(await subtle.encrypt(gcm(e.n, aad(e)), ck, plaintext));
  e.sig = new Uint8Array(await subtle.sign({ name: "Ed25519" }, sender.signPrivate, signedBytes(e)));
  return encode(e);
}

/** encode returns the canonical JSON of a parsed envelope (Go's MarshalJSON order). */
export function encode(e) {
  return JSON.stringify({
    v: VERSION, from: e.from, to: e.to, mid: e.mid, ts: e.ts,
    wraps: e.wraps.map((w) => ({ kid: b64.encode(w.kid), epk: b64.encode(w.epk), n: b64.encode(w.n), k: b64.encode(w.k) })),
    n: b64.encode(e.n), ct: b64.encode(e.ct), sig: b64.encode(e.sig),
  });
}

const envelopeMembers = ["v", "from", "to", "mid", "ts", "wraps", "n", "ct", "sig"];
const wrapMembers = ["kid", "epk", "n", "k"];

/**
 * parse checks the shape of an encoded envelope (a string, or an object as
 * carried inside a protocol frame) as the server does and returns it with
 * byte fields decoded. It does not verify the signature. Duplicate JSON
 * members cannot be seen through JSON.parse; the server refuses them.
 */
export function parse(input) {
  let o = input;
  if (typeof input === "string") {
    if (utf8.encode(input).length > MAX_ENCODED) fail("too_large", `encoded envelope over ${MAX_ENCODED} bytes`);
    try { o = JSON.parse(input); } catch { fail("malformed", "not JSON"); }
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) fail("malformed", "not a JSON object");
  if (!Number.isInteger(o.v)) fail("malformed", "v must be an integer");
  if (o.v !== VERSION) fail("version", `version ${o.v}`);
  exactMembers(o, envelopeMembers, "envelope");
  checkHeader(o);
  if (!Array.isArray(o.wraps) || o.wraps.length !== 2) fail("malformed", "want exactly 2 wraps");
  const wraps = o.wraps.map((w, i) => {
    exactMembers(w, wrapMembers, `wraps[${i}]`);
    return {
      kid: bytesField(w.kid, KEY_ID_SIZE, `wraps[${i}].kid`),
      epk: bytesField(w.epk, KEY_SIZE, `wraps[${i}].epk`),
      n: bytesField(w.n, NONCE_SIZE, `wraps[${i}].n`),
      k: bytesField(w.k, WRAPPED_KEY_SIZE, `wraps[${i}].k`),
    };
  });
  const ct = bytesField(o.ct, undefined, "ct");
  if (ct.length < TAG_SIZE) fail("malformed", "ct shorter than its tag");
  if (ct.length > MAX_PLAINTEXT + TAG_SIZE) fail("too_large", "ct over the payload limit");
  return {
    v: VERSION, from: o.from, to: o.to, mid: o.mid, ts: o.ts, wraps,
    n: bytesField(o.n, NONCE_SIZE, "n"), ct, sig: bytesField(o.sig, SIG_SIZE, "sig"),
  };
}

/** verify checks a parsed envelope's signature with the sender's raw Ed25519 key. */
export async function verify(e, senderSign) {
  const key = await importSignPublic(senderSign);
  if (!(await subtle.verify({ name: "Ed25519" }, key, e.sig, signedBytes(e)))) {
    fail("signature", "signature does not verify with the sender's key");
  }
}

/** unwrap returns the content key from the first wrap for reader that decrypts. */
async function unwrap(e, reader) {
  const kid = await keyID(reader.kexPublic);
  let found = false;
  for (const w of e.wraps) {
    if (!equalBytes(w.kid, kid)) continue;
    found = true;
    try {
      const shared = await x25519(reader.kexPrivate, await importX25519Public(w.epk));
      const kek = await wrappingKey(shared, w.epk, reader.kexPublic);
      return new Uint8Array(await subtle.decrypt(gcm(w.n), kek, w.k));
    } catch {
      // try the other wrap (a user writing to themself has two)
    }
  }
  if (!found) fail("no_wrap", "no wrap for this reader's key");
  return fail("decrypt", "content key does not decrypt");
}

/**
 * open parses input (see parse), verifies it with senderSign (the raw
 * Ed25519 public key of the user named in "from"), then decrypts it with
 * reader's keys. It returns {header: {from, to, mid, ts}, plaintext}.
 * Nothing is decrypted unless the signature verifies.
 */
export async function open(input, reader, senderSign) {
  const e = parse(input);
  await verify(e, senderSign);
  const contentKey = await unwrap(e, reader);
  const ck = await subtle.importKey("raw", contentKey, "AES-GCM", false, ["decrypt"]);
  contentKey.fill(0);
  let plaintext;
  try {
    plaintext = new Uint8Array(await subtle.decrypt(gcm(e.n, aad(e)), ck, e.ct));
  } catch {
    fail("decrypt", "payload does not decrypt");
  }
  return { header: { from: e.from, to: e.to, mid: e.mid, ts: e.ts }, plaintext };
}

/** fingerprintDigits returns the 30 fingerprint digits without spaces. */
async function fingerprintDigits(signPublic, kexPublic) {
  return digits(new Uint8Array(await subtle.digest("SHA-256", concat([lp(FINGERPRINT_DOMAIN), lp(signPublic), lp(kexPublic)]))));
}

/** fingerprint returns a user's 30-digit fingerprint in 6 groups of 5. */
export async function fingerprint(signPublic, kexPublic) {
  return groups(await fingerprintDigits(signPublic, kexPublic));
}

/**
 * safetyNumber returns the 60-digit number two users compare: both
 * fingerprints (as returned by fingerprint), sorted and joined. It is the
 * same whichever side computes it.
 */
export function safetyNumber(fingerprintA, fingerprintB) {
  const [a, b] = [fingerprintA.replace(/ /g, ""), fingerprintB.replace(/ /g, "")].sort();
  return groups(a + b);
}

/**
 * generateIdentity makes fresh identity keys. With extractable false (the
 * web client's choice) the private keys can be used but never read back.
 */
export async function generateIdentity(extractable = false) {
  const sign = await subtle.generateKey({ name: "Ed25519" }, extractable, ["sign", "verify"]);
  const kex = await subtle.generateKey({ name: "X25519" }, extractable, ["deriveBits"]);
  return {
    signPrivate: sign.privateKey,
    kexPrivate: kex.privateKey,
    signPublic: new Uint8Array(await subtle.exportKey("raw", sign.publicKey)),
    kexPublic: new Uint8Array(await subtle.exportKey("raw", kex.publicKey)),
  };
}

/**
 * importIdentity builds an identity from raw private keys: the 32-byte
 * Ed25519 seed and the 32-byte X25519 private key (Go's
 * ed25519.PrivateKey.Seed() and ecdh.PrivateKey.Bytes()). Used for test
 * vectors and for keys received from another device.
 */
export async function importIdentity(signSeed, kexPrivate, extractable = false) {
  const sign = await importPrivate("Ed25519", signSeed, extractable);
  const kex = await importPrivate("X25519", kexPrivate, extractable);
  return { signPrivate: sign.private, kexPrivate: kex.private, signPublic: sign.public, kexPublic: kex.public };
}
