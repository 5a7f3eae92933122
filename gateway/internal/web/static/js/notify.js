// User-facing notices: errors as sentences (the code kept in a detail
// line), and toasts.

import { h } from "./dom.js";

// SENTENCES says what each error code of schema/errors.go means to a
// person (web_test.go checks that every code has one). The client's own
// codes: "network" (the server was not reached), "closed" (the connection
// dropped before the answer), "timeout" (no answer in time).
const SENTENCES = {
  bad_request: "The server did not understand the request. Reloading the page may help.",
  body_too_large: "That is too large to send.",
  not_found: "No such user or device.",
  rate_limited: "Too many requests at once. Wait a moment and try again.",
  internal: "Something went wrong on the server. Try again in a moment.",
  unavailable: "The server cannot do this right now. Try again in a moment.",
  forbidden: "You are not allowed to do that.",
  invalid_handle: "A handle is 3 to 32 letters, digits or underscores.",
  handle_taken: "That handle is taken. Pick another one.",
  invalid_key: "The server refused these keys.",
  bad_signature: "Logging in failed: the keys in this browser do not belong to that account.",
  challenge_expired: "Logging in took too long. Try again.",
  challenge_used: "That login attempt was used already. Try again.",
  invalid_device: "A device name is 1 to 64 characters.",
  device_limit: "This account has the most devices it may have. Revoke one first.",
  unauthorized: "You are not logged in.",
  token_invalid: "Your session is not valid. Log in again.",
  token_expired: "Your session expired. Log in again.",
  token_revoked: "This device was logged out or revoked.",
  refresh_invalid: "Your session has ended. Log in again.",
  refresh_reused: "Your session was ended for safety: it was used from two places. Log in again.",
  self_request: "You cannot befriend yourself.",
  already_friends: "You are friends already.",
  request_exists: "You have asked them already; wait for an answer.",
  no_request: "There is no such friend request any more.",
  not_friend: "You can only message your friends.",
  friend_limit: "One of you has 20 friends already, the most there can be.",
  request_limit: "You have too many friend requests waiting. Cancel some first.",
  refused: "They do not accept this from you.",
  invalid_envelope: "The server refused this message as malformed.",
  message_too_large: "That message is too long.",
  self_send: "You cannot message yourself.",
  unknown_message: "That message is gone: read, recalled or expired.",
  mailbox_full: "Their mailbox is full. Try again once they have read some messages.",
  invalid_cursor: "The server refused the message's number.",
  unknown_attachment: "That file is gone: read, recalled or expired.",
  file_digest: "That file is not what the sender sent; it was not opened.",
  file_decrypt: "That file could not be decrypted.",
  attachment_too_large: "That file is too large: 25 MiB at most.",
  attachment_quota: "You have 10 unread files waiting already. Try again once some are read.",
  link_expired: "The link code expired. Start linking again.",
  account_suspended: "This account is suspended or being deleted.",
  device_revoked: "This device was revoked. It can never log in again; link it anew as a new device.",
  stale_device_list: "Your devices changed elsewhere meanwhile. Reload and try again.",
  unsupported_version: "This app is too old for the server. Reload the page.",
  prekey_limit: "This device has uploaded as many one-time keys as it may.",
  untrusted_keys: "Their keys changed. Compare safety numbers before you send again.",
  network: "The server cannot be reached. Check your connection.",
  closed: "The connection dropped before the server answered.",
  timeout: "The server did not answer in time.",
};

/** errorText turns an API or protocol error into a sentence for people. */
export function errorText(err) {
  if (err && err.code && SENTENCES[err.code]) return SENTENCES[err.code];
  if (err && err.code) return err.message || err.code;
  return String((err && err.message) || err);
}

/** errorDetail is the detail line under an error: its code and the server's message. */
export function errorDetail(err) {
  if (!err || !err.code) return "";
  return err.message ? `${err.code}: ${err.message}` : err.code;
}

/** showError puts err into el as a sentence with a detail line. */
export function showError(el, err) {
  el.replaceChildren(errorText(err));
  const detail = errorDetail(err);
  if (detail) el.append(h("span", { class: "detail" }, detail));
}

/** toast shows a short notice at the bottom of the page for five seconds. */
export function toast(text, kind = "info", detail = "") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast ${kind}`, role: "status" }, text, detail && h("span", { class: "detail" }, detail));
  box.append(el);
  setTimeout(() => el.remove(), 5000);
}

/** toastError shows err as a sentence with its code in a detail line. */
export function toastError(err) {
  toast(errorText(err), "error", errorDetail(err));
}
