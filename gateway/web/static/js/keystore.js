// Persistent state of the web client in IndexedDB (database "mayfly",
// object store "kv"): the identity (CryptoKey objects, stored as such
// through structured clone, so non-extractable private keys stay
// non-extractable) and the device's session tokens.

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
 * Identity record under "identity":
 *   {userID, handle, signPrivate, kexPrivate (CryptoKey),
 *    signPublic, kexPublic (Uint8Array), fingerprint, extractable}
 * Session record under "session":
 *   {userID, handle, deviceID, accessToken, expiresAt (ms), refreshToken}
 */
export const loadIdentity = () => get("identity");
export const saveIdentity = (id) => put("identity", id);
export const loadSession = () => get("session");
export const saveSession = (s) => put("session", s);

/**
 * clearSession removes the stored session if it is deviceID's: another tab
 * may have logged in again already, and its new session must stay.
 */
export async function clearSession(deviceID) {
  const s = await loadSession();
  if (s && s.deviceID === deviceID) await del("session");
}

/** forget removes the identity and the session: the keys are gone for good. */
export async function forget() {
  await del("session");
  await del("identity");
}
