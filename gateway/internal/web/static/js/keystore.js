// Persistent state of the web client in IndexedDB (database "mayfly",
// object store "kv"): the identity (CryptoKey objects, stored as such
// through structured clone, so non-extractable private keys stay
// non-extractable), the device's session tokens, its prekeys and the
// friends' pinned identity keys. A CryptoKey is deleted by deleting (or
// overwriting) the record that holds it.

const DB_NAME = "mayfly";
const STORE = "kv";

let dbPromise;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

async function tx(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req ? req.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

/** get returns the value stored under key, or undefined. */
export function get(key) {
  return tx("readonly", (s) => s.get(key));
}

/** put stores value under key. */
export function put(key, value) {
  return tx("readwrite", (s) => s.put(value, key));
}

/** del removes key. */
export function del(key) {
  return tx("readwrite", (s) => s.delete(key));
}

/**
 * Identity record under "identity" (identity v2, docs/envelope.md):
 *   {v: 2, userID, handle, deviceID,
 *    dk: {private: CryptoKey (Ed25519), public: Uint8Array},   this device's key
 *    ik: {private, public} or null,   the identity key, only on the primary device
 *    ikPublic: Uint8Array,            the account's identity key this device trusts
 *    fingerprint}                     of ikPublic
 * A record without v (identity v1) is not usable any more: the page offers
 * to forget it.
 * Session record under "session":
 *   {userID, handle, deviceID, accessToken, expiresAt (ms), refreshToken}
 * Prekeys under "prekeys" (prekeys.js); pinned identity keys of friends
 * under "pins" (peers.js).
 */
export const loadIdentity = () => get("identity");
export const saveIdentity = (id) => put("identity", id);
export const loadSession = () => get("session");
export const saveSession = (s) => put("session", s);

/**
 * update runs fn on the value under key and stores what it returns (if not
 * undefined), holding the Web Lock "mayfly-<key>" so that the page's tabs
 * never overwrite each other's changes. It returns fn's result.
 */
export function update(key, fn) {
  return navigator.locks.request("mayfly-" + key, async () => {
    const next = await fn(await get(key));
    if (next !== undefined) await put(key, next);
    return next;
  });
}

/**
 * clearSession removes the stored session if it is deviceID's: another tab
 * may have logged in again already, and its new session must stay.
 */
export async function clearSession(deviceID) {
  const s = await loadSession();
  if (s && s.deviceID === deviceID) await del("session");
}

/** forget removes the identity, the session, the prekeys and the pins: the keys are gone for good. */
export async function forget() {
  for (const k of ["session", "identity", "prekeys", "pins", "known_keys"]) await del(k);
}
