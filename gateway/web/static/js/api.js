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

function toSession(s) {
  return {
    userID: s.user_id, handle: s.handle, deviceID: s.device_id,
    accessToken: s.access_token, expiresAt: Date.parse(s.expires_at), refreshToken: s.refresh_token,
  };
}

/** register creates an account for the identity's public keys. */
export function register(handle, identity) {
  return call("POST", "/v1/register", {
    handle, sign_key: b64.encode(identity.signPublic), kex_key: b64.encode(identity.kexPublic),
  });
}

/**
 * login answers a fresh challenge for handle by signing it with the
 * identity's Ed25519 key and stores the new session.
 */
export async function login(handle, identity, deviceName) {
  const ch = await call("POST", "/v1/login/challenge", { handle });
  const nonce = b64.decode(ch.nonce);
  const ctx = new TextEncoder().encode("mayfly login v1\0" + ch.challenge_id + "\0");
  const msg = new Uint8Array(ctx.length + nonce.length);
  msg.set(ctx);
  msg.set(nonce, ctx.length);
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, identity.signPrivate, msg);
  const s = toSession(await call("POST", "/v1/login", {
    challenge_id: ch.challenge_id, signature: b64.encode(sig), device_name: deviceName,
  }));
  await keystore.saveSession(s);
  return s;
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
}
