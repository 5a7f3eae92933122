// The device's prekeys (docs/envelope.md, "Key lifetimes"): a signed
// prekey (SPK) replaced when it is 50 minutes old, a pool of up to 100
// one-time prekeys (OPKs) on the server, refilled when it holds fewer than
// 50. Private keys are non-extractable CryptoKeys in IndexedDB (record
// "prekeys", changed only under a Web Lock so the page's tabs never lose
// each other's keys); deleting a key deletes its entry. An OPK's private
// key is deleted once the message that used it burned (read here, or a
// burned event), and any OPK 65 minutes after the server handed it out; a
// replaced SPK 65 minutes after its replacement. The same rules as the Go
// client (gateway/client/prekeys.go).

import * as b64 from "./b64.js";
import * as identity from "./identity.js";
import * as keystore from "./keystore.js";
import { equalBytes } from "./wire.js";

const MINUTE = 60_000;
/** SPK_ROTATE_MS is the age at which the signed prekey is replaced. */
export const SPK_ROTATE_MS = 50 * MINUTE;
/** KEEP_MS is how long a replaced SPK, or an OPK the server handed out, is kept. */
export const KEEP_MS = 65 * MINUTE;
const OPK_TARGET = 100;
const OPK_LOW = 50;
const MAX_OPKS_PER_UPLOAD = 50;

const empty = () => ({ spks: [], opks: [] });

/**
 * prepare brings the stored prekeys up to date with the server's status
 * {has_spk, opks: [key ids]} at time now (ms), deleting what has expired
 * and making what is missing; me is {userID, deviceID, dk}. It stores the
 * new private keys before returning what to upload: {spk, opks} as signed
 * prekey objects.
 */
async function prepare(st, now, me) {
  const up = { spk: null, opks: [] };
  await keystore.update("prekeys", async (rec = empty()) => {
    const unclaimed = new Set(st.opks || []);
    rec.opks = rec.opks.filter((k) => {
      if (unclaimed.has(k.kid)) return true;
      if (!k.claimedAt) k.claimedAt = now;
      return now - k.claimedAt <= KEEP_MS;
    });
    rec.spks = rec.spks.filter((k) => !k.retiredAt || now - k.retiredAt <= KEEP_MS);
    const cur = rec.spks[rec.spks.length - 1];
    if (!cur || !st.has_spk || now - cur.createdAt >= SPK_ROTATE_MS) {
      if (cur) cur.retiredAt = now;
      const k = await identity.generateX25519();
      rec.spks.push({ private: k.private, public: k.public, createdAt: now });
      up.spk = identity.prekeyJSON(await identity.signPrekey(me.userID, me.deviceID, "spk", k.public, now, me.dk.private));
    }
    const have = (st.opks || []).length;
    if (have < OPK_LOW) {
      for (let i = have; i < OPK_TARGET; i++) {
        const k = await identity.generateX25519();
        rec.opks.push({ kid: b64.encode(await identity.keyID(k.public)), private: k.private, public: k.public, createdAt: now });
        up.opks.push(identity.prekeyJSON(await identity.signPrekey(me.userID, me.deviceID, "opk", k.public, now, me.dk.private)));
      }
    }
    return rec;
  });
  return up;
}

/**
 * maintain keeps this device's prekeys as docs/envelope.md says, through
 * client (an api.Client): run it at login, on every connect and every few
 * minutes while the page is open.
 */
export async function maintain(client, me) {
  const up = await prepare(await client.prekeyStatus(), Date.now(), me);
  let spk = up.spk;
  let opks = up.opks;
  while (spk || opks.length > 0) {
    const part = { opks: opks.slice(0, MAX_OPKS_PER_UPLOAD) };
    if (spk) part.spk = spk;
    opks = opks.slice(part.opks.length);
    spk = null;
    await client.putPrekeys(part);
  }
}

/**
 * find returns the private prekey of kind ("spk" or "opk") whose 8-byte key
 * id is kid, as {private, public}, or null when this device does not hold
 * it (deleted, or never made here).
 */
export async function find(kind, kid) {
  const rec = (await keystore.get("prekeys")) || empty();
  const id = b64.encode(kid);
  if (kind === "opk") return rec.opks.find((k) => k.kid === id) || null;
  for (const k of rec.spks) {
    if (equalBytes(await identity.keyID(k.public), kid)) return k;
  }
  return null;
}

/** used records that the message at mailbox seq used the one-time prekey kid (8 bytes; empty for none). */
export async function used(kid, seq) {
  if (kid.length === 0) return;
  const id = b64.encode(kid);
  await keystore.update("prekeys", (rec) => {
    const k = rec && rec.opks.find((x) => x.kid === id);
    if (!k || k.seq === seq) return undefined;
    k.seq = seq;
    return rec;
  });
}

/**
 * burned deletes the one-time prekey of the message at seq, once it
 * burned: no copy of that message opens on this device any more.
 */
export async function burned(seq) {
  await keystore.update("prekeys", (rec) => {
    if (!rec) return undefined;
    const n = rec.opks.length;
    rec.opks = rec.opks.filter((k) => k.seq !== seq);
    return rec.opks.length === n ? undefined : rec;
  });
}

/** held returns the key ids (base64url) of every one-time prekey this device still holds. */
export async function held() {
  const rec = (await keystore.get("prekeys")) || empty();
  return rec.opks.map((k) => k.kid);
}
