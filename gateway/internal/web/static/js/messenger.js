// Messenger holds the signed-in user's live state: friends with their keys
// and presence, friend requests, and the messages of each chat, kept only
// in memory. It opens and seals envelopes in the page (plaintext never
// leaves it), sends read when a message has been shown, and follows the
// server's events. Views listen for "change" and re-render.

import * as b64 from "./b64.js";
import * as envelope from "./envelope.js";
import * as identity from "./identity.js";
import * as prekeys from "./prekeys.js";
import { Peers, UntrustedError } from "./peers.js";
import { decodePayload, encodePayload, openFile, sealFile } from "./payload.js";
import { Conn } from "./ws.js";

/** MESSAGE_TTL_MS is how long the server keeps an unread message (mailbox MaxAge, 55 minutes by default). */
export const MESSAGE_TTL_MS = 55 * 60 * 1000;

/** PREKEY_EVERY_MS is how often prekeys are maintained while the page is open (SPK rotation, OPK refill). */
const PREKEY_EVERY_MS = 5 * 60 * 1000;

const FRIEND_EVENTS = new Set(["friend_request", "friend_accepted", "friend_removed", "request_declined",
  "request_cancelled", "friend_keys_changed", "user_blocked", "user_unblocked"]);

function newMsgID() {
  return "w" + b64.encode(crypto.getRandomValues(new Uint8Array(12)));
}

// INLINE_TYPES are the media types a received file is shown or played as;
// every other file gets application/octet-stream and is only downloaded (a
// sender-chosen text/html or image/svg+xml blob would run in this origin).
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp",
  "audio/webm", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/wav"]);

/** safeType is the type a file's blob gets (see INLINE_TYPES). */
export function safeType(type) {
  return INLINE_TYPES.has(type) ? type : "application/octet-stream";
}

function releaseFiles(m) {
  for (const f of m.files || []) if (f.url) URL.revokeObjectURL(f.url);
}

/**
 * A message in a chat:
 *   {key, mid, self, ts (ms), text, seq (own mailbox seq, once known), status,
 *    files: [{id, name, type, size, key, sha256, state ("pending" | "ready" |
 *    "remote" | "error"), url (object URL once ready), error}]}
 * A received message with files is burned only once they are downloaded
 * (the burn deletes them on the server); a download that fails for another
 * reason than the file being gone holds the message unread.
 * status of a received message: "unread" | "read" (shown, burned) |
 * "unreadable" (not sealed for this device, or its prekey is gone; never
 * marked read here, so it does not burn for the user's other devices)
 * status of a sent one: "sending" | "sent" (stored) | "delivered" (on a
 * device of the friend, unread) | "read" (the
 * friend read it; burned) | "recalled" | "failed" (error set)
 */
export class Messenger extends EventTarget {
  constructor(identity, session, api) {
    super();
    this.me = { ...identity, userID: session.userID, handle: session.handle, deviceID: session.deviceID };
    this.api = api;
    this.peers = new Peers(api, this.me);
    this.friends = new Map(); // user id -> friend (with decoded keys and presence)
    this.presence = new Map(); // user id -> {online, lastSeen}: the last heard, also before the friend list has them
    this.requests = { incoming: [], outgoing: [] };
    this.chats = new Map(); // peer user id -> Map(key -> message)
    this.bySeq = new Map(); // own mailbox seq -> message
    this.early = new Map(); // seq -> message event that came before the message's seq was known
    this.openChat = null; // peer id of the chat on screen
    this.queue = Promise.resolve(); // frames are handled one at a time, in order
    this.conn = new Conn(() => api.token());
    this.conn.addEventListener("msg", (e) => this.enqueue(() => this.onMsg(e.detail)));
    this.conn.addEventListener("event", (e) => this.enqueue(() => this.onEvent(e.detail)));
    this.conn.addEventListener("status", () => {
      // Changes made while the socket was down (or before its first
      // subscription) sent events nobody received: reload on every connect.
      if (this.conn.status === "online") {
        this.enqueue(() => Promise.all([this.loadFriends(), this.loadRequests()]));
        this.maintainPrekeys();
        this.markShownRead(); // reads that failed while the socket was down
      }
      this.changed();
    });
    this.onVisible = () => this.markShownRead();
    document.addEventListener("visibilitychange", this.onVisible);
  }

  enqueue(fn) {
    this.queue = this.queue.then(fn).catch((err) => console.error("mayfly:", err));
  }

  changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }

  async start() {
    await Promise.all([this.loadFriends(), this.loadRequests()]);
    this.prekeyTimer = setInterval(() => this.maintainPrekeys(), PREKEY_EVERY_MS);
    this.conn.start();
  }

  stop() {
    document.removeEventListener("visibilitychange", this.onVisible);
    clearInterval(this.prekeyTimer);
    this.conn.stop();
  }

  /** maintainPrekeys rotates the signed prekey and refills the one-time prekeys (prekeys.js). */
  maintainPrekeys() {
    if (this.maintaining) return this.maintaining;
    this.maintaining = prekeys.maintain(this.api, this.me)
      .catch((err) => console.warn("mayfly: prekeys:", err.code || "", err.message))
      .finally(() => { this.maintaining = null; });
    return this.maintaining;
  }

  /**
   * loadFriends fetches the friend list and checks each friend's identity
   * key against the one pinned in this browser (peers.js); a changed key
   * flags the friend, and nothing is sealed to them until the user accepts.
   */
  async loadFriends() {
    const { friends } = await this.api.friends();
    const checks = await this.peers.check(friends);
    const next = new Map();
    for (const f of friends) {
      const prev = this.friends.get(f.user_id);
      const pr = this.presence.get(f.user_id);
      const c = checks.get(f.user_id);
      const fr = {
        ...f, ikPublic: c.served, pinnedIK: c.pinned, fingerprintOK: c.fingerprintOK,
        keysChanged: c.changed || Boolean(prev && prev.untrusted),
        untrusted: prev ? prev.untrusted : false,
        online: pr ? pr.online : false, lastSeen: pr ? pr.lastSeen : null,
      };
      fr.localFingerprint = await identity.identityFingerprint(fr.ikPublic);
      fr.pinnedFingerprint = await identity.identityFingerprint(fr.pinnedIK);
      fr.safetyNumber = await identity.safetyNumber(this.me.ikPublic, fr.ikPublic);
      if (c.changed) this.peers.forgetList(f.user_id);
      next.set(f.user_id, fr);
    }
    this.friends = next;
    this.changed();
  }

  /**
   * acceptKeys pins the identity key the server now serves for a friend:
   * the user compared the safety number (or chose to accept it).
   */
  async acceptKeys(peerID) {
    const fr = this.friends.get(peerID);
    if (!fr) return;
    await this.peers.accept(peerID, fr.ikPublic);
    Object.assign(fr, { pinnedIK: fr.ikPublic, pinnedFingerprint: fr.localFingerprint, keysChanged: false, untrusted: false });
    this.changed();
  }

  async loadRequests() {
    this.requests = await this.api.requests();
    this.changed();
  }

  friendByHandle(handle) {
    for (const f of this.friends.values()) if (f.handle === handle) return f;
    return null;
  }

  chat(peerID) {
    let c = this.chats.get(peerID);
    if (!c) { c = new Map(); this.chats.set(peerID, c); }
    return c;
  }

  /** messages returns a chat's messages, oldest first. */
  messages(peerID) {
    return [...this.chat(peerID).values()].sort((a, b) => a.ts - b.ts || (a.seq || 0) - (b.seq || 0));
  }

  unreadCount(peerID) {
    let n = 0;
    for (const m of this.chat(peerID).values()) if (!m.self && m.status === "unread") n++;
    return n;
  }

  /** setOpenChat makes peerID's chat the one on screen; the one left loses its burned messages. */
  setOpenChat(peerID) {
    if (this.openChat && this.openChat !== peerID) this.dropFinished(this.openChat);
    this.openChat = peerID;
    this.changed();
    this.markShownRead();
  }

  dropFinished(peerID) {
    const c = this.chat(peerID);
    for (const [k, m] of c) {
      if (m.status === "read" || m.status === "recalled") {
        releaseFiles(m);
        c.delete(k);
        if (m.seq) this.bySeq.delete(m.seq);
      }
    }
  }

  /** handleOf returns the handle of the user or of a friend, for messages. */
  handleOf(userID) {
    if (userID === this.me.userID) return this.me.handle;
    const fr = this.friends.get(userID);
    return fr ? fr.handle : userID;
  }

  /**
   * openFrame verifies and opens a msg frame's envelope with this device's
   * prekeys. It returns {text} or {unreadable: why}; it throws when the
   * message must be dropped (forged, or from someone not trusted).
   */
  async openFrame(f) {
    const e = envelope.parse(f.envelope);
    if (e.from !== f.from || e.to !== f.to || e.mid !== f.msg_id) throw new Error("envelope header differs from the server's");
    if (e.fd === this.me.deviceID) return { sentHere: true };
    const list = await this.peers.list(e.from, this.handleOf(e.from), e.fd);
    try {
      const opened = await envelope.open(f.envelope, list, this.me.deviceID, prekeys.find);
      await prekeys.used(opened.wrap.opk, f.seq);
      const p = decodePayload(opened.plaintext);
      await this.peers.learn(e.from, p.lv);
      return { text: p.text, files: p.files };
    } catch (err) {
      if (err.kind === "no_wrap") return { unreadable: err.message };
      throw err;
    }
  }

  async onMsg(f) {
    const self = f.self || f.from === this.me.userID;
    const peerID = self ? f.to : f.from;
    if (!self && !this.friends.has(peerID)) await this.loadFriends();
    if (!self && !this.friends.has(peerID)) return; // not (or no longer) a friend: nothing to verify it with
    let opened;
    try {
      opened = await this.openFrame(f);
    } catch (err) {
      console.warn("mayfly: dropped a message that does not open:", err.message);
      return;
    }
    const key = (self ? "o:" : "i:") + f.msg_id;
    const c = this.chat(peerID);
    const m = c.get(key) || { key, mid: f.msg_id, self };
    if (opened.sentHere && m.text === undefined) {
      m.text = "(sent from this browser; its text is not kept)";
    } else if (opened.unreadable) {
      m.text = "(this message cannot be opened on this device: " + opened.unreadable + ")";
      m.status = self ? m.status : "unreadable";
    } else if (!opened.sentHere) {
      m.text = opened.text;
      if (!m.files && opened.files.length) {
        m.files = opened.files.map((fl) => ({ ...fl, state: self ? "remote" : "pending" }));
        if (!self) {
          m.pending = true;
          this.fetchFiles(m);
        }
      }
    }
    m.ts = Date.parse(f.sent_at) || m.ts || Date.now();
    m.seq = f.seq;
    if (!m.status || m.status === "sending") m.status = self ? "sent" : "unread";
    c.set(key, m);
    this.bySeq.set(f.seq, m);
    this.changed();
    this.markShownRead();
  }

  /**
   * fetchFiles downloads, checks and decrypts a received message's files,
   * then lets it be marked read. A file that is gone (unknown_attachment)
   * does not hold the message; any other failure does, so the file is not
   * burned unseen.
   */
  async fetchFiles(m) {
    await Promise.all(m.files.map((f) => this.fetchFile(f)));
    m.pending = false;
    m.hold = m.files.some((f) => f.state === "error" && f.error !== "unknown_attachment");
    this.changed();
    this.markShownRead();
  }

  /** fetchFile makes file f ready (an object URL of its plaintext) or records its error. */
  async fetchFile(f) {
    f.state = "pending";
    this.changed();
    try {
      const plain = await openFile(f, new Uint8Array(await this.api.download(f.id)));
      f.url = URL.createObjectURL(new Blob([plain], { type: safeType(f.type) }));
      f.state = "ready";
    } catch (err) {
      Object.assign(f, { state: "error", error: err.code || err.message });
    }
    this.changed();
  }

  onEvent(ev) {
    if (FRIEND_EVENTS.has(ev.type)) {
      return Promise.all([this.loadFriends(), this.loadRequests()]);
    }
    switch (ev.type) {
      case "presence":
        return this.setPresence(ev.presence);
      case "presence_snapshot":
        for (const p of ev.presences || []) this.setPresence(p);
        return;
      case "burned":
        return prekeys.burned(ev.seq).then(() => this.messageGone(ev));
      case "recalled":
      case "withdrawn":
      case "delivered":
        return this.messageGone(ev);
      case "device_revoked":
        this.peers.forgetList(this.me.userID);
        this.dispatchEvent(new CustomEvent("devices"));
    }
  }

  setPresence(p) {
    if (!p) return;
    const state = { online: p.online, lastSeen: p.last_seen ? Date.parse(p.last_seen) : null };
    this.presence.set(p.user_id, state); // a snapshot can come before the friend list has a new friend
    const fr = this.friends.get(p.user_id);
    if (!fr) return;
    Object.assign(fr, state);
    this.changed();
  }

  /**
   * messageGone applies a burned, recalled, withdrawn or delivered event to
   * the message with that seq ("delivered" only moves a sent message on).
   */
  messageGone(ev) {
    const m = this.bySeq.get(ev.seq);
    if (!m) {
      // A friend can get or read a message before this device learnt its
      // seq from the sent answer; keep the event for deliver to apply
      // (a delivered event never replaces another one).
      if (ev.type === "delivered" && this.early.has(ev.seq)) return;
      this.early.set(ev.seq, ev);
      if (this.early.size > 256) this.early.delete(this.early.keys().next().value);
      return;
    }
    const c = this.chat(ev.peer_id);
    if (ev.type === "delivered") {
      if (m.self && m.status === "sent") { m.status = "delivered"; this.changed(); }
      return;
    }
    if (ev.type === "withdrawn") {
      m.status = "failed";
      m.error = "not delivered";
    } else if (ev.type === "recalled") {
      if (m.self) m.status = "recalled"; else { releaseFiles(m); c.delete(m.key); }
    } else if (m.self) {
      m.status = "read";
    } else if (m.status === "unread") {
      releaseFiles(m);
      c.delete(m.key); // read on another device
    }
    if (!c.has(m.key)) this.bySeq.delete(ev.seq);
    this.changed();
  }

  /**
   * markShownRead sends read for every unread message of the chat on
   * screen, while the page is visible: the message has been shown, so it
   * burns. It stays on screen until the chat is left.
   */
  markShownRead() {
    if (!this.openChat || document.visibilityState !== "visible") return;
    for (const m of this.chat(this.openChat).values()) {
      if (m.self || m.status !== "unread" || m.reading || m.pending || m.hold) continue;
      m.reading = true;
      this.conn.request({ type: "read", seq: m.seq }).then(
        () => { m.status = "read"; this.changed(); return prekeys.burned(m.seq); },
        (err) => {
          m.reading = false;
          if (err.code === "unknown_message") { m.status = "read"; this.changed(); }
          // unavailable: the burn did not happen (docs/protocol.md); try again.
          if (err.code === "unavailable") setTimeout(() => this.markShownRead(), 1000);
        });
    }
  }

  /**
   * send seals text for every listed device of the friend and the user's
   * other devices, and sends it; the message shows at once as "sending".
   * files ({name, type, data: Uint8Array}, at most MAX_FILES) are sealed
   * and uploaded first, each with its own key that only the envelope holds.
   * A friend whose identity key changed, or whose bundle is not signed by
   * the pinned one, gets nothing: the message fails with untrusted_keys.
   */
  async send(peerID, text, files = []) {
    const fr = this.friends.get(peerID);
    if (!fr) throw new Error("not a friend");
    const mid = newMsgID();
    const m = { key: "o:" + mid, mid, self: true, ts: Date.now(), text, status: "sending" };
    if (files.length) {
      m.files = files.map((f) => ({ name: f.name, type: f.type, size: f.data.byteLength, state: "ready",
        url: URL.createObjectURL(new Blob([f.data], { type: safeType(f.type) })) }));
    }
    this.chat(peerID).set(m.key, m);
    this.changed();
    try {
      if (fr.keysChanged) throw new UntrustedError(fr.handle, "the identity key changed since it was pinned");
      const refs = [];
      for (const f of files) {
        const s = await sealFile(f.data);
        const up = await this.api.upload(peerID, mid, s.sealed);
        refs.push({ id: up.id, name: f.name, type: f.type, size: s.size, key: s.key, sha256: s.sha256 });
      }
      refs.forEach((r, i) => { m.files[i].id = r.id; });
      m.envelope = JSON.parse(await this.seal(fr, mid, m.ts, text, refs));
    } catch (err) {
      Object.assign(m, { status: "failed", error: err.code || err.kind || err.message });
      if (err instanceof UntrustedError) Object.assign(fr, { untrusted: true, keysChanged: true });
      this.changed();
      return m;
    }
    await this.deliver(peerID, m);
    return m;
  }

  /**
   * seal claims the bundles, verifies them against the pinned keys and seals
   * the payload of text and file references refs; the payload carries the
   * user's own device list version, known once ownTargets has run.
   */
  async seal(fr, mid, ts, text, refs = []) {
    if (fr.keysChanged) throw new UntrustedError(fr.handle, "the identity key changed since it was pinned");
    const targets = [...await this.peers.targets(fr.user_id, fr.handle), ...await this.peers.ownTargets()];
    if (targets.length === 0) throw Object.assign(new Error(`no device of @${fr.handle} can receive messages yet`), { code: "no_devices" });
    const header = { from: this.me.userID, fd: this.me.deviceID, to: fr.user_id, mid, ts };
    return envelope.seal(header, this.me.dk.private, targets.slice(0, envelope.MAX_WRAPS), encodePayload(text, refs, this.peers.ownVer));
  }

  /** deliver sends (or resends, with the same message id) a sealed message. */
  async deliver(peerID, m) {
    m.status = "sending";
    m.error = null;
    this.changed();
    try {
      const res = await this.conn.request({ type: "send", to: peerID, envelope: m.envelope });
      m.seq = res.seq;
      this.bySeq.set(res.seq, m);
      if (m.status === "sending") m.status = "sent";
      const ev = this.early.get(res.seq);
      if (ev) {
        this.early.delete(res.seq);
        this.messageGone(ev);
      }
    } catch (err) {
      Object.assign(m, { status: "failed", error: err.code || err.message });
    }
    this.changed();
  }

  /** recall withdraws one of the user's sent messages that has not been read. */
  async recall(peerID, m) {
    await this.conn.request({ type: "recall", seq: m.seq });
    m.status = "recalled";
    this.changed();
  }

  /** expire removes messages past the server's 55-minute limit. */
  expire(now = Date.now()) {
    let any = false;
    for (const c of this.chats.values()) {
      for (const [k, m] of c) {
        if (m.status !== "sending" && m.status !== "read" && now >= m.ts + MESSAGE_TTL_MS) {
          releaseFiles(m);
          c.delete(k);
          if (m.seq) this.bySeq.delete(m.seq);
          any = true;
        }
      }
    }
    if (any) this.changed();
  }
}
