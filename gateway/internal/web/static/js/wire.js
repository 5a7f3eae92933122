// Building blocks shared by the envelope and identity formats
// (docs/envelope.md, "Encodings"): big-endian integers, length-prefixed
// byte strings, the error every format parser throws, and strict checks of
// JSON members, ids and base64url fields that refuse what the Go parser
// (schema/envelope) refuses.

import * as b64 from "./b64.js";

export const utf8 = new TextEncoder();

/** Sizes in bytes of keys, key ids, nonces, wrapped keys, signatures and AEAD tags. */
export const KEY_SIZE = 32;
export const KEY_ID_SIZE = 8;
export const NONCE_SIZE = 12;
export const WRAPPED_KEY_SIZE = 48;
export const SIG_SIZE = 64;
export const TAG_SIZE = 16;

/** MAX_MILLIS is the largest time or version, 2^53-1 (a JS number holds it exactly). */
export const MAX_MILLIS = 2 ** 53 - 1;

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * EnvelopeError is thrown for every failure of the formats; kind is one of
 * "malformed", "version", "too_large", "key", "signature", "no_wrap",
 * "decrypt", "identity", matching the Go sentinel errors (ErrMalformed, ...).
 */
export class EnvelopeError extends Error {
  constructor(kind, message) {
    super(`envelope: ${kind}: ${message}`);
    this.name = "EnvelopeError";
    this.kind = kind;
  }
}

/** fail throws an EnvelopeError of kind. */
export function fail(kind, msg) {
  throw new EnvelopeError(kind, msg);
}

/** concat joins byte arrays. */
export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

/** u32 returns x as 4 big-endian bytes. */
export function u32(x) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, false);
  return b;
}

/** u64 returns x (a safe integer) as 8 big-endian bytes. */
export function u64(x) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(x), false);
  return b;
}

/** lp returns x (bytes or an ASCII string) prefixed with its 4-byte length. */
export function lp(x) {
  const b = typeof x === "string" ? utf8.encode(x) : x;
  return concat([u32(b.length), b]);
}

/** equalBytes compares two byte arrays in time independent of their content. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** random returns n bytes from the browser's CSPRNG. */
export function random(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** checkID throws "malformed" unless id is 1-64 characters of [A-Za-z0-9_-]. */
export function checkID(id, name) {
  if (typeof id !== "string" || !idPattern.test(id)) fail("malformed", `${name} must be 1-64 characters of [A-Za-z0-9_-]`);
}

/** checkInt throws "malformed" unless v is an integer in [1, 2^53-1]. */
export function checkInt(v, name) {
  if (!Number.isSafeInteger(v) || v < 1) fail("malformed", `${name} out of range`);
}

/** object throws "malformed" unless o is a plain JSON object. */
export function object(o, what) {
  if (o === null || typeof o !== "object" || Array.isArray(o)) fail("malformed", `${what} is not an object`);
  return o;
}

/** exactMembers throws "malformed" unless o is an object with exactly the members names. */
export function exactMembers(o, names, what) {
  object(o, what);
  const keys = Object.keys(o);
  if (keys.length !== names.length || !names.every((n) => Object.hasOwn(o, n))) {
    fail("malformed", `${what} must have exactly the members ${names.join(", ")}`);
  }
}

/** bytesField decodes canonical base64url of size bytes (any size when undefined). */
export function bytesField(v, size, name) {
  try {
    return b64.decode(v, size);
  } catch (err) {
    return fail("malformed", `${name}: ${err.message}`);
  }
}

/**
 * checkVersion throws "malformed" when o.v is missing or not an integer and
 * "version" when it is another integer than want, in Go's order.
 */
export function checkVersion(o, want) {
  if (!Number.isInteger(o.v)) fail("malformed", "v must be an integer");
  if (o.v !== want) fail("version", `version ${o.v}`);
}

/**
 * jsonObject returns input parsed when it is a string (refusing more than
 * max UTF-8 bytes with "too_large"), or input itself when it is already an
 * object (as carried inside a frame or an API answer).
 */
export function jsonObject(input, max, what) {
  let o = input;
  if (typeof input === "string") {
    if (utf8.encode(input).length > max) fail("too_large", `encoded ${what} over ${max} bytes`);
    try { o = JSON.parse(input); } catch { fail("malformed", "not JSON"); }
  }
  return object(o, what);
}

/** digits returns the 30 decimal digits of a 32-byte digest (6 × 40-bit groups mod 100000). */
export function digits(d) {
  let out = "";
  for (let i = 0; i < 6; i++) {
    let x = 0;
    for (let j = 0; j < 5; j++) x = x * 256 + d[5 * i + j];
    out += String(x % 100000).padStart(5, "0");
  }
  return out;
}

/** groups spaces a digit string in groups of 5. */
export function groups(s) {
  return s.match(/.{1,5}/g).join(" ");
}
