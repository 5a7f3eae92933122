// Message payload (docs/payload.md): a UTF-8 JSON object {"text": ...,
// "files": [...], "lv": ...}. Readers fall back to showing any other payload as UTF-8
// text, and drop file references that fail their checks. Files are sealed
// for upload with their own key: AES-256-GCM, 12 zero bytes of nonce (a key
// seals one file), associated data "mayfly file v1"; the reference carries
// the key and the SHA-256 of the sealed bytes.

import * as b64 from "./b64.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

/** MAX_FILES is the most files one message carries; MAX_FILE_SIZE the largest file (25 MiB). */
export const MAX_FILES = 4;
export const MAX_FILE_SIZE = 25 * 1024 * 1024;
const MAX_NAME = 255;
const MAX_TYPE = 127;
const MAX_ID = 200;
const FILE_AAD = enc.encode("mayfly file v1");

/**
 * encodePayload returns the payload bytes for text and file references
 * ({id, name, type, size, key: Uint8Array, sha256: Uint8Array}); lv, when a
 * positive integer, is the sender's own device list version (member "lv").
 */
export function encodePayload(text, files = [], lv = 0) {
  const o = { text };
  if (lv > 0) o.lv = lv;
  if (files.length) {
    o.files = files.map((f) => ({ id: f.id, name: f.name, type: f.type, size: f.size, key: b64.encode(f.key), sha256: b64.encode(f.sha256) }));
  }
  return enc.encode(JSON.stringify(o));
}

/** encodeText returns the payload bytes for a text message, carrying list version lv when positive. */
export function encodeText(text, lv = 0) {
  return encodePayload(text, [], lv);
}

const printable = /^[\x21-\x7e]*$/;

function checkFile(f) {
  if (!f || typeof f !== "object" || Array.isArray(f)) return null;
  const { id, name, type, size, key, sha256 } = f;
  if (typeof id !== "string" || !id || id.length > MAX_ID || !printable.test(id)) return null;
  if (typeof name !== "string" || enc.encode(name).length > MAX_NAME) return null;
  if (typeof type !== "string" || type.length > MAX_TYPE || !printable.test(type)) return null;
  if (!Number.isInteger(size) || size < 0 || size > MAX_FILE_SIZE) return null;
  try {
    return { id, name, type, size, key: b64.decode(key, 32), sha256: b64.decode(sha256, 32) };
  } catch {
    return null;
  }
}

/**
 * decodePayload returns {text, files, dropped, lv} of payload bytes; it never
 * throws. Malformed file references, and any past MAX_FILES, are dropped; lv
 * is 0 unless "lv" is a positive safe integer.
 */
export function decodePayload(bytes) {
  const s = dec.decode(bytes);
  let o;
  try { o = JSON.parse(s); } catch { /* not JSON: a foreign or older client's plain text */ }
  if (!o || typeof o !== "object" || Array.isArray(o) || typeof o.text !== "string") return { text: s, files: [], dropped: 0, lv: 0 };
  if (o.files !== undefined && !Array.isArray(o.files)) return { text: s, files: [], dropped: 0, lv: 0 };
  const files = [];
  let dropped = 0;
  for (const raw of o.files || []) {
    const f = checkFile(raw);
    if (f && files.length < MAX_FILES) files.push(f); else dropped++;
  }
  return { text: o.text, files, dropped, lv: Number.isSafeInteger(o.lv) && o.lv > 0 ? o.lv : 0 };
}

/** decodeText returns the message text of payload bytes; it never throws. */
export function decodeText(bytes) {
  return decodePayload(bytes).text;
}

async function fileKey(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/**
 * sealFile encrypts a file's bytes with a fresh key: {sealed, key, sha256, size}.
 * keyBytes is for test vectors only; never reuse a key.
 */
export async function sealFile(plain, keyBytes) {
  if (plain.byteLength > MAX_FILE_SIZE) throw Object.assign(new Error("a file is at most 25 MiB"), { code: "attachment_too_large" });
  const key = keyBytes || crypto.getRandomValues(new Uint8Array(32));
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: new Uint8Array(12), additionalData: FILE_AAD, tagLength: 128 }, await fileKey(key), plain));
  const sha256 = new Uint8Array(await crypto.subtle.digest("SHA-256", sealed));
  return { sealed, key, sha256, size: plain.byteLength };
}

/** openFile checks sealed bytes against a reference's digest and decrypts them; it throws with code "file_digest" or "file_decrypt". */
export async function openFile(f, sealed) {
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", sealed));
  if (sum.length !== f.sha256.length || sum.some((b, i) => b !== f.sha256[i])) {
    throw Object.assign(new Error("the file is not what the sender sealed"), { code: "file_digest" });
  }
  try {
    return new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: new Uint8Array(12), additionalData: FILE_AAD, tagLength: 128 }, await fileKey(f.key), sealed));
  } catch {
    throw Object.assign(new Error("the file does not decrypt"), { code: "file_decrypt" });
  }
}
