// Base64url without padding (RFC 4648 §5), the encoding of every key and
// byte field in the Mayfly HTTP API and envelopes. decode is strict: it
// accepts only the canonical form the Go side writes (no padding, no line
// breaks, unused trailing bits zero), like schema/envelope's Parse.

const alphabet = /^[A-Za-z0-9_-]*$/;

/** encode returns bytes (Uint8Array or ArrayBuffer) as base64url without padding. */
export function encode(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * decode returns the bytes of canonical base64url text s. It throws a
 * TypeError for anything else, or when want is given and the length differs.
 */
export function decode(s, want) {
  if (typeof s !== "string" || !alphabet.test(s) || s.length % 4 === 1) {
    throw new TypeError("not base64url without padding");
  }
  const std = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  const bin = atob(std);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (encode(out) !== s) throw new TypeError("not canonical base64url");
  if (want !== undefined && out.length !== want) {
    throw new TypeError(`want ${want} bytes, got ${out.length}`);
  }
  return out;
}
