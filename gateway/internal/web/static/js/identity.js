// Identity v2 in WebCrypto (docs/envelope.md, version 2): device ids,
// device lists signed by the account's identity key (IK), prekeys signed by
// a device key (DK), bundles, identity fingerprints and safety numbers.
// Byte for byte the Go package schema/envelope; gateway/internal/web's browser tests
// check the test vectors and both directions of interop.
//
// Keys are CryptoKey objects (private halves may be non-extractable; the
// functions here never export them) and raw public keys as Uint8Array(32).
// Parsers take a JSON string or an already parsed object and return plain
// objects with byte fields decoded; they refuse what the Go parsers refuse,
// except duplicate JSON members (JSON.parse cannot see them; the server
// refuses them) and integers written with an exponent or ".0".

import * as b64 from "./b64.js";
import {
  KEY_ID_SIZE, KEY_SIZE, SIG_SIZE, bytesField, checkID, checkInt, checkVersion, concat, digits, equalBytes, exactMembers, fail,
  groups, jsonObject, lp, object, u32, u64,
} from "./wire.js";

export const VERSION = 2;
export const MAX_DEVICES = 5;
export const MAX_LIST_ENCODED = 2048;
export const MAX_PREKEY_ENCODED = 512;
export const MAX_BUNDLE_ENCODED = 8192;
export const KIND_SPK = "spk";
export const KIND_OPK = "opk";


const DEVICE_ID_DOMAIN = "mayfly device id v2";
const DEVICE_LIST_DOMAIN = "mayfly device list v2";
const PREKEY_DOMAIN = "mayfly prekey v2";
const FINGERPRINT_DOMAIN = "mayfly fingerprint v2";

const subtle = globalThis.crypto.subtle;

// PKCS #8 prefixes for a 32-byte Ed25519 seed and X25519 private key (RFC 8410).
const PKCS8_ED25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

// ---- keys ----

/**
 * generateSigningKey makes an Ed25519 key pair (an IK or a DK):
 * {private: CryptoKey ("sign"), public: Uint8Array(32)}. With extractable
 * false (the web client's choice) the private key can be used, never read.
 */
export async function generateSigningKey(extractable = false) {
  const k = await subtle.generateKey({ name: "Ed25519" }, extractable, ["sign", "verify"]);
  return { private: k.privateKey, public: new Uint8Array(await subtle.exportKey("raw", k.publicKey)) };
}

/** generateX25519 makes an X25519 key pair (a prekey): {private: CryptoKey ("deriveBits"), public}. */
export async function generateX25519(extractable = false) {
  const k = await subtle.generateKey({ name: "X25519" }, extractable, ["deriveBits"]);
  return { private: k.privateKey, public: new Uint8Array(await subtle.exportKey("raw", k.publicKey)) };
}

/**
 * importPrivate builds a key pair from a raw 32-byte private key: an
 * Ed25519 seed (alg "Ed25519", Go's PrivateKey.Seed()) or an X25519
 * scalar (alg "X25519", Go's ecdh PrivateKey.Bytes()). Used for test
 * vectors and for ephemeral keys made from random bytes.
 */
export async function importPrivate(alg, raw, extractable = false) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_SIZE) fail("key", "private key must be 32 bytes");
  const ed = alg === "Ed25519";
  const pkcs8 = concat([ed ? PKCS8_ED25519 : PKCS8_X25519, raw]);
  const usages = ed ? ["sign"] : ["deriveBits"];
  const priv = await subtle.importKey("pkcs8", pkcs8, { name: alg }, true, usages);
  // The public half comes from the JWK form of the (briefly extractable) key.
  const pub = b64.decode((await subtle.exportKey("jwk", priv)).x, KEY_SIZE);
  if (extractable) return { private: priv, public: pub };
  return { private: await subtle.importKey("pkcs8", pkcs8, { name: alg }, false, usages), public: pub };
}

/** importX25519Public imports a raw X25519 public key; wrong sizes are "key" errors. */
export async function importX25519Public(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_SIZE) fail("key", "X25519 public key must be 32 bytes");
  return subtle.importKey("raw", raw, { name: "X25519" }, true, []);
}

let probe;

/**
 * checkX25519Public throws "key" for a low-order X25519 public key, whose
 * every shared secret is zero (Go's kexPublic: X25519 with a fixed probe).
 */
export async function checkX25519Public(raw) {
  if (!probe) probe = importPrivate("X25519", new Uint8Array(KEY_SIZE)).then((k) => k.private);
  const pub = await importX25519Public(raw);
  let shared;
  try {
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pub }, await probe, 256));
  } catch {
    fail("key", "X25519 public key of low order");
  }
  if (shared.every((b) => b === 0)) fail("key", "X25519 public key of low order");
}

/** keyID returns the 8-byte key id of a raw X25519 public key. */
export async function keyID(pub) {
  return (await sha256(pub)).slice(0, KEY_ID_SIZE);
}

async function verifySig(pub, sig, bytes) {
  const key = await subtle.importKey("raw", pub, { name: "Ed25519" }, true, ["verify"]);
  return subtle.verify({ name: "Ed25519" }, key, sig, bytes);
}

async function sign(priv, bytes) {
  return new Uint8Array(await subtle.sign({ name: "Ed25519" }, priv, bytes));
}

// ---- device ids ----

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** base32 returns bytes in RFC 4648 base32 without padding, lower case. */
export function base32(bytes) {
  let out = "", bits = 0, acc = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >>> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

/** deviceID returns the id of a raw Ed25519 device key: "d" + 26 base32 characters. */
export async function deviceID(key) {
  const d = await sha256(concat([lp(DEVICE_ID_DOMAIN), lp(key)]));
  return "d" + base32(d.subarray(0, 16));
}

// ---- device lists ----

function listSignedBytes(l) {
  const parts = [lp(DEVICE_LIST_DOMAIN), lp(l.uid), u64(l.ver), u64(l.ts), lp(l.ik), u32(l.devices.length)];
  for (const d of l.devices) parts.push(lp(d.id), lp(d.key));
  return concat(parts);
}

/** encodeDeviceList returns the canonical JSON of a parsed or signed list. */
export function encodeDeviceList(l) {
  return JSON.stringify({
    v: VERSION, uid: l.uid, ver: l.ver, ts: l.ts, ik: b64.encode(l.ik),
    devices: l.devices.map((d) => ({ id: d.id, key: b64.encode(d.key) })), sig: b64.encode(l.sig),
  });
}

/**
 * signDeviceList signs the list of device keys (raw Ed25519 public keys,
 * 1 to 5, distinct) of user uid, version ver, time ts (unix ms), with the
 * identity key ik ({private, public}); it returns the parsed list, whose
 * canonical JSON is encodeDeviceList(list).
 */
export async function signDeviceList(uid, ver, ts, keys, ik) {
  const l = { v: VERSION, uid, ver, ts, ik: ik.public, devices: [] };
  for (const key of keys) l.devices.push({ id: await deviceID(key), key });
  await checkList(l);
  l.sig = await sign(ik.private, listSignedBytes(l));
  return l;
}

async function checkList(l) {
  checkID(l.uid, "uid");
  checkInt(l.ver, "ver");
  checkInt(l.ts, "ts");
  if (l.devices.length < 1 || l.devices.length > MAX_DEVICES) fail("malformed", `want 1 to ${MAX_DEVICES} devices`);
  const seen = new Set();
  for (const d of l.devices) {
    if (d.key.length !== KEY_SIZE) fail("key", "device key must be 32 bytes");
    if (d.id !== await deviceID(d.key)) fail("malformed", "device id does not match its key");
    if (seen.has(d.id)) fail("malformed", "device listed twice");
    seen.add(d.id);
  }
}

const LIST_MEMBERS = ["v", "uid", "ver", "ts", "ik", "devices", "sig"];

/** parseDeviceList checks a list's shape (not its signature) and decodes it. */
export async function parseDeviceList(input) {
  const o = jsonObject(input, MAX_LIST_ENCODED, "device list");
  checkVersion(o, VERSION);
  exactMembers(o, LIST_MEMBERS, "device list");
  if (typeof o.uid !== "string") fail("malformed", "uid is not a string");
  checkInt(o.ver, "ver");
  checkInt(o.ts, "ts");
  const l = { v: VERSION, uid: o.uid, ver: o.ver, ts: o.ts, ik: bytesField(o.ik, KEY_SIZE, "ik"), sig: bytesField(o.sig, SIG_SIZE, "sig") };
  if (!Array.isArray(o.devices)) fail("malformed", "devices is not an array");
  if (o.devices.length > MAX_DEVICES) fail("malformed", `more than ${MAX_DEVICES} devices`);
  l.devices = o.devices.map((d, i) => {
    exactMembers(d, ["id", "key"], `devices[${i}]`);
    if (typeof d.id !== "string") fail("malformed", `devices[${i}].id is not a string`);
    return { id: d.id, key: bytesField(d.key, KEY_SIZE, `devices[${i}].key`) };
  });
  await checkList(l);
  return l;
}

/**
 * verifyDeviceList checks that l is user uid's list signed by the identity
 * key pinnedIK (raw) the caller trusts: another user or IK is "identity",
 * a bad signature "signature".
 */
export async function verifyDeviceList(l, uid, pinnedIK) {
  if (l.uid !== uid) fail("identity", `list of ${l.uid}, want ${uid}`);
  if (!equalBytes(l.ik, pinnedIK)) fail("identity", "list signed by another identity key");
  if (!(await verifySig(l.ik, l.sig, listSignedBytes(l)))) fail("signature", "device list signature does not verify");
}

/** listedKey returns the device key of id in list l, or null. */
export function listedKey(l, id) {
  const d = l.devices.find((x) => x.id === id);
  return d ? d.key : null;
}

// ---- prekeys ----

function prekeySignedBytes(p, uid, did) {
  return concat([lp(PREKEY_DOMAIN), lp(uid), lp(did), lp(p.kind), lp(p.pub), u64(p.ts)]);
}

/** prekeyJSON returns a prekey as the object whose JSON.stringify is its canonical encoding. */
export function prekeyJSON(p) {
  return { kind: p.kind, pub: b64.encode(p.pub), ts: p.ts, sig: b64.encode(p.sig) };
}

/**
 * signPrekey signs the X25519 public key pub as a prekey of kind ("spk" or
 * "opk") made at ts for user uid's device did, with that device's signing
 * key dk (a CryptoKey); it returns the prekey {kind, pub, ts, sig}.
 */
export async function signPrekey(uid, did, kind, pub, ts, dk) {
  checkID(uid, "uid");
  checkID(did, "device id");
  const p = { kind, pub, ts };
  await checkPrekey(p);
  p.sig = await sign(dk, prekeySignedBytes(p, uid, did));
  return p;
}

async function checkPrekey(p) {
  if (p.kind !== KIND_SPK && p.kind !== KIND_OPK) fail("malformed", `kind must be "spk" or "opk"`);
  await checkX25519Public(p.pub);
  checkInt(p.ts, "ts");
}

/** parsePrekey checks a prekey's shape (not its signature) and decodes it. */
export async function parsePrekey(input) {
  const o = jsonObject(input, MAX_PREKEY_ENCODED, "prekey");
  exactMembers(o, ["kind", "pub", "ts", "sig"], "prekey");
  if (typeof o.kind !== "string") fail("malformed", "kind is not a string");
  const p = { kind: o.kind, pub: bytesField(o.pub, KEY_SIZE, "pub") };
  checkInt(o.ts, "ts");
  p.ts = o.ts;
  p.sig = bytesField(o.sig, SIG_SIZE, "sig");
  await checkPrekey(p);
  return p;
}

/** verifyPrekey checks p's signature by user uid's device did with its raw key dk. */
export async function verifyPrekey(p, uid, did, dk) {
  if (!(await verifySig(dk, p.sig, prekeySignedBytes(p, uid, did)))) fail("signature", `prekey of device ${did} does not verify`);
}

// ---- bundles ----

/** parseBundle checks a bundle's shape (not its signatures) and decodes it: {list, devices: [{id, spk, opk|null}]}. */
export async function parseBundle(input) {
  const o = jsonObject(input, MAX_BUNDLE_ENCODED, "bundle");
  exactMembers(o, ["list", "devices"], "bundle");
  const list = await parseDeviceList(object(o.list, "list"));
  if (!Array.isArray(o.devices)) fail("malformed", "devices is not an array");
  if (o.devices.length > list.devices.length) fail("malformed", "more prekey entries than devices");
  const devices = [];
  for (const [i, d] of o.devices.entries()) {
    exactMembers(d, ["id", "spk", "opk"], `devices[${i}]`);
    if (typeof d.id !== "string") fail("malformed", `devices[${i}].id is not a string`);
    const spk = await parsePrekey(object(d.spk, "spk"));
    if (spk.kind !== KIND_SPK) fail("malformed", `devices[${i}].spk is not of kind spk`);
    let opk = null;
    if (d.opk !== null) {
      opk = await parsePrekey(object(d.opk, "opk"));
      if (opk.kind !== KIND_OPK) fail("malformed", `devices[${i}].opk is not of kind opk`);
    }
    if (!listedKey(list, d.id)) fail("malformed", `devices[${i}] is not in the list`);
    if (devices.some((x) => x.id === d.id)) fail("malformed", `devices[${i}] given twice`);
    devices.push({ id: d.id, spk, opk });
  }
  return { list, devices };
}

/** encodeBundle returns the canonical JSON of a parsed bundle. */
export function encodeBundle(bu) {
  return `{"list":${encodeDeviceList(bu.list)},"devices":${JSON.stringify(bu.devices.map((d) => ({
    id: d.id, spk: prekeyJSON(d.spk), opk: d.opk && prekeyJSON(d.opk),
  })))}}`;
}

/**
 * verifyBundle checks bundle bu of user uid against the pinned identity key
 * (raw): the list as verifyDeviceList, and every prekey signed by its
 * listed device. It returns the targets to seal to, [{d, spk, opk|null}]
 * (raw X25519 public keys) in list order, without the device skip (the
 * sender's own). On any error nothing may be sealed to any key of bu.
 */
export async function verifyBundle(bu, uid, pinnedIK, skip = "") {
  await verifyDeviceList(bu.list, uid, pinnedIK);
  const out = [];
  for (const d of bu.devices) {
    const key = listedKey(bu.list, d.id);
    await verifyPrekey(d.spk, uid, d.id, key);
    if (d.opk) await verifyPrekey(d.opk, uid, d.id, key);
    if (d.id !== skip) out.push({ d: d.id, spk: d.spk.pub, opk: d.opk ? d.opk.pub : null });
  }
  return out;
}

// ---- fingerprints ----

/** identityDigits returns the 30 fingerprint digits of a raw IK, without spaces. */
async function identityDigits(ik) {
  return digits(await sha256(concat([lp(FINGERPRINT_DOMAIN), lp(ik)])));
}

/** identityFingerprint returns the fingerprint of a raw IK: 30 digits in 6 groups of 5. */
export async function identityFingerprint(ik) {
  return groups(await identityDigits(ik));
}

/** safetyNumber returns the 60-digit number of two raw IKs; the same whichever side computes it. */
export async function safetyNumber(ikA, ikB) {
  const [a, b] = [await identityDigits(ikA), await identityDigits(ikB)].sort();
  return groups(a + b);
}
