// Messenger holds the signed-in user's live state: friends with their keys
// and presence, friend requests, and the messages of each chat, kept only
// in memory. It opens and seals envelopes in the page (plaintext never
// leaves it), sends read when a message has been shown, and follows the
// server's events. Views listen for "change" and re-render.

import * as b64 from "./b64.js";
import * as envelope from "./envelope.js";
import * as keystore from "./keystore.js";
import { decodeText, encodeText } from "./payload.js";
import { Conn } from "./ws.js";

/** MESSAGE_TTL_MS is how long the server keeps an unread message. */
export const MESSAGE_TTL_MS = 60 * 60 * 1000;

const FRIEND_EVENTS = new Set(["friend_request", "friend_accepted", "friend_removed", "request_declined",
  "request_cancelled", "friend_keys_changed", "user_blocked", "user_unblocked"]);

function newMsgID() {
  return "w" + b64.encode(crypto.getRandomValues(new Uint8Array(12)));
}

/**
 * A message in a chat:
 *   {key, mid, self, ts (ms), text, seq (own mailbox seq, once known), status}
 * status of a received message: "unread" | "read" (shown, burned)
 * status of a sent one: "sending" | "sent" (stored, unread) | "read" (the
 * friend read it; burned) | "recalled" | "failed" (error set)
 */
export class Messenger extends EventTarget {
  constructor(identity, session, api) {
    super();
    this.me = { ...identity, userID: session.userID, handle: session.handle, deviceID: session.deviceID };
    this.api = api;
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
    this.conn.start();
  }

  stop() {
    document.removeEventListener("visibilitychange", this.onVisible);
    this.conn.stop();
  }

  /** loadFriends fetches the friend list, decoding keys and checking fingerprints locally. */
  async loadFriends() {
    const { friends } = await this.api.friends();
    const known = (await keystore.get("known_keys")) || {};
    const next = new Map();
    for (const f of friends) {
      const pr = this.presence.get(f.user_id);
      const fr = {
        ...f, signPublic: b64.decode(f.sign_key, 32), kexPublic: b64.decode(f.kex_key, 32),
        online: pr ? pr.online : false, lastSeen: pr ? pr.lastSeen : null,
      };
      fr.localFingerprint = await envelope.fingerprint(fr.signPublic, fr.kexPublic);
      fr.safetyNumber = envelope.safetyNumber(this.me.fingerprint, fr.localFingerprint);
      fr.keysChanged = known[f.user_id] !== undefined && known[f.user_id] !== fr.localFingerprint;
      if (!fr.keysChanged) known[f.user_id] = fr.localFingerprint;
      next.set(f.user_id, fr);
    }
    await keystore.put("known_keys", known);
    this.friends = next;
    this.changed();
  }

  /** acceptKeys records a friend's changed keys as the ones to expect from now on. */
  async acceptKeys(peerID) {
    const fr = this.friends.get(peerID);
    if (!fr) return;
    const known = (await keystore.get("known_keys")) || {};
    known[peerID] = fr.localFingerprint;
    await keystore.put("known_keys", known);
    fr.keysChanged = false;
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
        c.delete(k);
        if (m.seq) this.bySeq.delete(m.seq);
      }
    }
  }

  async onMsg(f) {
    const self = f.self || f.from === this.me.userID;
    const peerID = self ? f.to : f.from;
    let signKey = this.me.signPublic;
    if (!self) {
      if (!this.friends.has(peerID)) await this.loadFriends();
      const fr = this.friends.get(peerID);
      if (!fr) return; // not (or no longer) a friend: nothing to verify it with
      signKey = fr.signPublic;
    }
    let opened;
    try {
      opened = await envelope.open(f.envelope, this.me, signKey);
    } catch (err) {
      console.warn("mayfly: dropped a message that does not open:", err.message);
      return;
    }
    const h = opened.header;
    if (h.from !== f.from || h.to !== f.to || h.mid !== f.msg_id) {
      console.warn("mayfly: dropped a message whose envelope header differs from the server's");
      return;
    }
    const key = (self ? "o:" : "i:") + h.mid;
    const c = this.chat(peerID);
    const m = c.get(key) || { key, mid: h.mid, self };
    Object.assign(m, { ts: Date.parse(f.sent_at) || h.ts, text: decodeText(opened.plaintext), seq: f.seq });
    if (!m.status || m.status === "sending") m.status = self ? "sent" : "unread";
    c.set(key, m);
    this.bySeq.set(f.seq, m);
    this.changed();
    this.markShownRead();
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
      case "recalled":
      case "withdrawn":
        return this.messageGone(ev);
      case "device_revoked":
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

  /** messageGone applies a burned, recalled or withdrawn event to the message with that seq. */
  messageGone(ev) {
    const m = this.bySeq.get(ev.seq);
    if (!m) {
      // A friend can read a message before this device learnt its seq
      // from the sent answer; keep the event for deliver to apply.
      this.early.set(ev.seq, ev);
      if (this.early.size > 256) this.early.delete(this.early.keys().next().value);
      return;
    }
    const c = this.chat(ev.peer_id);
    if (ev.type === "withdrawn") {
      m.status = "failed";
      m.error = "not delivered";
    } else if (ev.type === "recalled") {
      if (m.self) m.status = "recalled"; else c.delete(m.key);
    } else if (m.self) {
      m.status = "read";
    } else if (m.status === "unread") {
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
      if (m.self || m.status !== "unread" || m.reading) continue;
      m.reading = true;
      this.conn.request({ type: "read", seq: m.seq }).then(
        () => { m.status = "read"; this.changed(); },
        (err) => {
          m.reading = false;
          if (err.code === "unknown_message") { m.status = "read"; this.changed(); }
        });
    }
  }

  /** send seals text for the friend and sends it; the message shows at once as "sending". */
  async send(peerID, text) {
    const fr = this.friends.get(peerID);
    if (!fr) throw new Error("not a friend");
    const mid = newMsgID();
    const m = { key: "o:" + mid, mid, self: true, ts: Date.now(), text, status: "sending" };
    this.chat(peerID).set(m.key, m);
    this.changed();
    try {
      const header = { from: this.me.userID, to: peerID, mid, ts: m.ts };
      m.envelope = JSON.parse(await envelope.seal(header, this.me, fr.kexPublic, encodeText(text)));
    } catch (err) {
      Object.assign(m, { status: "failed", error: err.message });
      this.changed();
      return m;
    }
    await this.deliver(peerID, m);
    return m;
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

  /** expire removes messages past the server's 60-minute limit. */
  expire(now = Date.now()) {
    let any = false;
    for (const c of this.chats.values()) {
      for (const [k, m] of c) {
        if (m.status !== "sending" && m.status !== "read" && now >= m.ts + MESSAGE_TTL_MS) {
          c.delete(k);
          if (m.seq) this.bySeq.delete(m.seq);
          any = true;
        }
      }
    }
    if (any) this.changed();
  }
}
