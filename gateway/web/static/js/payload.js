// Message payload v1 (docs/payload.md): a UTF-8 JSON object {"text": ..., "lv": ...}.
// Readers fall back to showing any other payload as UTF-8 text.

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

/**
 * encodeText returns the payload bytes for a text message; lv, when a
 * positive integer, is the sender's own device list version (member "lv").
 */
export function encodeText(text, lv = 0) {
  return enc.encode(JSON.stringify(lv > 0 ? { text, lv } : { text }));
}

/**
 * decodePayload returns {text, lv} of payload bytes: lv is 0 unless the
 * payload is an object with a positive safe integer "lv". It never throws.
 */
export function decodePayload(bytes) {
  const s = dec.decode(bytes);
  try {
    const o = JSON.parse(s);
    if (o && typeof o === "object" && !Array.isArray(o) && typeof o.text === "string") {
      return { text: o.text, lv: Number.isSafeInteger(o.lv) && o.lv > 0 ? o.lv : 0 };
    }
  } catch {
    // not JSON: a foreign or older client's plain text
  }
  return { text: s, lv: 0 };
}

/** decodeText returns the message text of payload bytes; it never throws. */
export function decodeText(bytes) {
  return decodePayload(bytes).text;
}
