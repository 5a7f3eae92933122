// HTTP API client (docs/api.md): registration, challenge login, token
// refresh, friends and devices. Errors are ApiError with the server's
// error code (schema/errors.go), or "network" when the server was not
// reached.

import * as b64 from "./b64.js";
import * as keystore from "./keystore.js";

/** ApiError carries a client-visible error code and its safe message. */
export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

// Refresh the access token this long before it expires.
const REFRESH_MARGIN_MS = 30_000;

async function call(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit",
    });
  } catch (err) {
    throw new ApiError("network", "server not reachable: " + err.message, 0);
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch { /* empty or not JSON */ }
  if (!resp.ok) {
    const e = data && data.error;
    throw new ApiError(e ? e.code : "internal", e ? e.message : `HTTP ${resp.status}`, resp.status);
  }
  return data;
}

/** callBytes sends bytes (or nothing) and returns the answer: JSON, or an ArrayBuffer when raw. */
async function callBytes(method, path, bytes, token, raw) {
  const headers = { Authorization: "Bearer " + token };
  if (bytes) headers["Content-Type"] = "application/octet-stream";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: bytes, cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new ApiError("network", "server not reachable: " + err.message, 0);
  }
  if (!resp.ok) {
    let data = null;
    try { data = await resp.json(); } catch { /* not JSON */ }
    const e = data && data.error;
    throw new ApiError(e ? e.code : "internal", e ? e.message : `HTTP ${resp.status}`, resp.status);
  }
  try {
    return raw ? await resp.arrayBuffer() : await resp.json();
  } catch (err) {
    throw new ApiError("network", "the answer was cut short: " + err.message, 0);
  }
}

function toSession(s) {
  return {
    userID: s.user_id, handle: s.handle, deviceID: s.device_id,
    accessToken: s.access_token, expiresAt: Date.parse(s.expires_at), refreshToken: s.refresh_token,
  };
}

/** register creates an account for the identity key (raw Ed25519 public key). */
export function register(handle, ikPublic) {
  return call("POST", "/v1/register", { handle, ik: b64.encode(ikPublic) });
}

/** publishList stores a device list signed by the identity key (its canonical JSON); no token needed. */
export function publishList(listJSON) {
  return call("POST", "/v1/devicelist", { list: JSON.parse(listJSON) });
}

/** deviceList returns user userID's newest signed device list as a JSON object, or null when none. */
export async function deviceList(userID) {
  try {
    return (await call("GET", `/v1/devicelist/${encodeURIComponent(userID)}`)).list;
  } catch (err) {
    if (err instanceof ApiError && err.code === "not_found") return null;
    throw err;
  }
}

/**
 * login answers a fresh challenge for handle by signing
 * "mayfly login v2\0" || challenge_id || "\0" || device_id || "\0" || nonce
 * with the device key, and stores the new session.
 */
export async function login(handle, identity, deviceName) {
  const ch = await call("POST", "/v1/login/challenge", { handle });
  const nonce = b64.decode(ch.nonce);
  const ctx = new TextEncoder().encode("mayfly login v2\0" + ch.challenge_id + "\0" + identity.deviceID + "\0");
  const msg = new Uint8Array(ctx.length + nonce.length);
  msg.set(ctx);
  msg.set(nonce, ctx.length);
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, identity.dk.private, msg);
  const s = toSession(await call("POST", "/v1/login", {
    challenge_id: ch.challenge_id, device_id: identity.deviceID, signature: b64.encode(sig), device_name: deviceName,
  }));
  await keystore.saveSession(s);
  return s;
}

/** startLink asks for a link request for a new device's link key and device key (raw), under the code's lookup part. */
export function startLink(linkPublic, deviceKey, code) {
  return call("POST", "/v1/link", { public_key: b64.encode(linkPublic), device_key: b64.encode(deviceKey), code });
}

/** linkStatus polls a link request with its secret: {status, user_id, handle, bundle}. */
export function linkStatus(code, secret) {
  return call("GET", `/v1/link/${encodeURIComponent(code)}/bundle`, undefined, secret);
}

/**
 * Client makes authenticated calls for the stored session, refreshing the
 * access token before it expires. Refreshes are serialized across tabs with
 * a Web Lock: refresh tokens rotate, and presenting one twice would end the
 * session (refresh_reused).
 */
export class Client {
  constructor(session, onSessionEnd) {
    this.session = session;
    this.onSessionEnd = onSessionEnd;
  }

  /** token returns a valid access token, refreshing it when due. */
  async token() {
    if (this.session.expiresAt - Date.now() > REFRESH_MARGIN_MS) return this.session.accessToken;
    await navigator.locks.request("mayfly-refresh", async () => {
      const stored = await keystore.loadSession();
      if (stored && stored.refreshToken !== this.session.refreshToken) {
        this.session = stored; // another tab refreshed already
        if (stored.expiresAt - Date.now() > REFRESH_MARGIN_MS) return;
      }
      try {
        this.session = toSession(await call("POST", "/v1/refresh", { refresh_token: this.session.refreshToken }));
      } catch (err) {
        if (err instanceof ApiError && err.code.startsWith("refresh_")) this.ended(err);
        throw err;
      }
      await keystore.saveSession(this.session);
    });
    return this.session.accessToken;
  }

  ended(err) {
    if (this.onSessionEnd) this.onSessionEnd(err);
  }

  /** do makes an authenticated call; a revoked session ends it. */
  async do(method, path, body) {
    try {
      return await call(method, path, body, await this.token());
    } catch (err) {
      if (err instanceof ApiError && (err.code === "token_revoked" || err.code === "token_invalid")) this.ended(err);
      throw err;
    }
  }

  friends() { return this.do("GET", "/v1/friends"); }
  requests() { return this.do("GET", "/v1/friends/requests"); }
  request(handle) { return this.do("POST", "/v1/friends/requests", { handle }); }
  accept(handle) { return this.do("POST", `/v1/friends/requests/${encodeURIComponent(handle)}/accept`); }
  decline(handle) { return this.do("POST", `/v1/friends/requests/${encodeURIComponent(handle)}/decline`); }
  cancel(handle) { return this.do("DELETE", `/v1/friends/requests/${encodeURIComponent(handle)}`); }
  unfriend(handle) { return this.do("DELETE", `/v1/friends/${encodeURIComponent(handle)}`); }
  block(handle) { return this.do("POST", "/v1/blocks", { handle }); }
  devices() { return this.do("GET", "/v1/devices"); }
  revokeDevice(id) { return this.do("DELETE", `/v1/devices/${encodeURIComponent(id)}`); }
  /** deleteAccount deletes the account for good; handle confirms it. */
  deleteAccount(handle) { return this.do("DELETE", "/v1/account", { handle }); }
  lookup(handle) { return this.do("GET", `/v1/users/${encodeURIComponent(handle)}`); }
  prekeyStatus() { return this.do("GET", "/v1/prekeys"); }
  putPrekeys(upload) { return this.do("PUT", "/v1/prekeys", upload); }
  claimBundle(userID) { return this.do("POST", `/v1/users/${encodeURIComponent(userID)}/bundle`); }
  linkInfo(code) { return this.do("GET", `/v1/link/${encodeURIComponent(code)}`); }
  /** upload stores a sealed file (Uint8Array) for message mid to user id to: {id, size}. */
  async upload(to, mid, sealed) {
    const q = new URLSearchParams({ to, mid });
    return callBytes("POST", "/v1/attachments?" + q, sealed, await this.token(), false);
  }
  /** download returns the sealed bytes of attachment id as an ArrayBuffer. */
  async download(id) {
    return callBytes("GET", `/v1/attachments/${encodeURIComponent(id)}`, null, await this.token(), true);
  }
  approveLink(code, bundle) { return this.do("POST", `/v1/link/${encodeURIComponent(code)}/approve`, { bundle }); }
}
