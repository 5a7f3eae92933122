// Message payload v1 (docs/payload.md): a UTF-8 JSON object {"text": ...}.
// Readers fall back to showing any other payload as UTF-8 text.

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

/** encodeText returns the payload bytes for a text message. */
export function encodeText(text) {
  return enc.encode(JSON.stringify({ text }));
}

/** decodeText returns the message text of payload bytes; it never throws. */
export function decodeText(bytes) {
  const s = dec.decode(bytes);
  try {
    const o = JSON.parse(s);
    if (o && typeof o === "object" && !Array.isArray(o) && typeof o.text === "string") return o.text;
  } catch {
    // not JSON: a foreign or older client's plain text
  }
  return s;
}
