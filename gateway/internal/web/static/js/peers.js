// Trust in other users' keys (docs/envelope.md, "Trust: pinning and safety
// numbers"): each friend's identity key (IK) is pinned the first time the
// page learns it, with the highest device-list version seen (IndexedDB
// record "pins"). Before sealing, the page claims the friend's bundle and
// verifies it against the pinned IK; a bundle or list not signed by it, or
// a version below one seen before, seals nothing and fails with the code
// untrusted_keys until the user verifies or accepts the new safety number.
// Sending devices are looked up in lists verified the same way. The user's
// own IK is the one in the identity record.

import * as b64 from "./b64.js";
import * as api from "./api.js";
import * as identity from "./identity.js";
import * as keystore from "./keystore.js";

/** OWN_LIST_MAX_AGE_MS is how long the own list is trusted to say "no other devices". */
const OWN_LIST_MAX_AGE_MS = 60_000;

/** UntrustedError is a refusal to seal: code "untrusted_keys", like the CLI's. */
export class UntrustedError extends Error {
  constructor(handle, why) {
    super(`@${handle}'s identity key changed or their devices are not signed by it; nothing was sent. Compare the safety number, then accept it. (${why})`);
    this.name = "UntrustedError";
    this.code = "untrusted_keys";
  }
}

export class Peers {
  /** client is an api.Client; me the identity record (userID, handle, deviceID, ikPublic). */
  constructor(client, me) {
    this.client = client;
    this.me = me;
    this.lists = new Map(); // user id -> verified device list
    this.ownListAt = 0;
    this.ownVer = 0; // the highest own list version seen: every sent message carries it (payload "lv")
  }

  /** pins returns the stored pins: {userID: {ik: base64url, ver}}. */
  async pins() {
    return (await keystore.get("pins")) || {};
  }

  /**
   * check pins the IK of each friend ({user_id, ik, fingerprint}) seen for
   * the first time and returns, per user id, {pinned: raw IK, changed:
   * whether the server now names another IK, fingerprintOK: whether the
   * server's fingerprint is the IK's}.
   */
  async check(friends) {
    const out = new Map();
    await keystore.update("pins", async (pins = {}) => {
      for (const f of friends) {
        if (!pins[f.user_id]) pins[f.user_id] = { ik: f.ik, ver: 0 };
        const served = b64.decode(f.ik, 32);
        out.set(f.user_id, {
          pinned: b64.decode(pins[f.user_id].ik, 32), served, changed: pins[f.user_id].ik !== f.ik,
          fingerprintOK: (await identity.identityFingerprint(served)) === f.fingerprint,
        });
      }
      return pins;
    });
    return out;
  }

  /** accept pins ik (raw) as userID's identity key: the user compared or accepted the safety number. */
  async accept(userID, ik) {
    await keystore.update("pins", (pins = {}) => {
      pins[userID] = { ik: b64.encode(ik), ver: 0 };
      return pins;
    });
    this.lists.delete(userID);
  }

  /** pinned returns the raw IK trusted for userID (the own one for the user), or null. */
  async pinned(userID) {
    if (userID === this.me.userID) return this.me.ikPublic;
    const p = (await this.pins())[userID];
    return p ? b64.decode(p.ik, 32) : null;
  }

  /** raise records ver as the highest list version seen for userID; a lower one throws. */
  async raise(userID, handle, ver) {
    if (userID === this.me.userID) {
      this.ownVer = Math.max(this.ownVer, ver);
      return;
    }
    await keystore.update("pins", (pins = {}) => {
      const p = pins[userID];
      if (!p) return undefined;
      if (ver < p.ver) throw new UntrustedError(handle, `device list version ${ver} below ${p.ver} seen before`);
      if (ver === p.ver) return undefined;
      p.ver = ver;
      return pins;
    });
  }

  /**
   * targets claims userID's bundle (its one-time prekeys go to this caller
   * only) and returns the verified targets, without skip. Anything not
   * signed by the pinned IK throws UntrustedError; nothing may be sealed.
   */
  async targets(userID, handle, skip = "") {
    const ik = await this.pinned(userID);
    if (!ik) throw new UntrustedError(handle, "no pinned identity key");
    let bu, ts;
    try {
      bu = await identity.parseBundle(await this.client.claimBundle(userID));
      ts = await identity.verifyBundle(bu, userID, ik, skip);
    } catch (err) {
      if (err.kind) throw new UntrustedError(handle, err.message);
      throw err;
    }
    await this.raise(userID, handle, bu.list.ver);
    this.lists.set(userID, bu.list);
    return ts;
  }

  /**
   * ownTargets returns the user's other devices to seal for: none when the
   * own list (fetched within the last minute) names only this device.
   */
  async ownTargets() {
    const l = this.lists.get(this.me.userID);
    if (l && l.devices.length === 1 && Date.now() - this.ownListAt < OWN_LIST_MAX_AGE_MS) return [];
    const ts = await this.targets(this.me.userID, this.me.handle, this.me.deviceID);
    this.ownListAt = Date.now();
    return ts;
  }

  /**
   * list returns userID's device list verified against the pinned IK,
   * fetched again unless the cached one names device (when given).
   */
  async list(userID, handle, device) {
    const cached = this.lists.get(userID);
    if (cached && (!device || identity.listedKey(cached, device))) return cached;
    const ik = await this.pinned(userID);
    const raw = await api.deviceList(userID);
    if (!ik || !raw) throw new UntrustedError(handle, "no device list or no pinned identity key");
    let l;
    try {
      l = await identity.parseDeviceList(raw);
      await identity.verifyDeviceList(l, userID, ik);
    } catch (err) {
      if (err.kind) throw new UntrustedError(handle, err.message);
      throw err;
    }
    await this.raise(userID, handle, l.ver);
    this.lists.set(userID, l);
    if (userID === this.me.userID) this.ownListAt = Date.now();
    return l;
  }

  /**
   * learn records that a message of userID, signed by a listed device of
   * theirs, says their device list reached version lv (the payload's "lv",
   * docs/payload.md): a lower list is refused from now on, and a cached one
   * below it is dropped. A lower lv changes nothing.
   */
  async learn(userID, lv) {
    if (!Number.isSafeInteger(lv) || lv <= 0) return;
    const cached = this.lists.get(userID);
    if (cached && cached.ver < lv) this.lists.delete(userID);
    if (userID === this.me.userID) {
      this.ownVer = Math.max(this.ownVer, lv);
      return;
    }
    await keystore.update("pins", (pins = {}) => {
      const p = pins[userID];
      if (!p || lv <= p.ver) return undefined;
      p.ver = lv;
      return pins;
    });
  }

  /** forgetList drops the cached list of userID (it changed). */
  forgetList(userID) {
    this.lists.delete(userID);
  }
}
