// WebSocket connection speaking the Mayfly protocol (docs/protocol.md):
// authenticates with the access token as a subprotocol (browsers cannot
// set headers on a handshake), syncs the mailbox from the last sequence it
// saw, answers requests by id, and reconnects with exponential backoff and
// jitter. It dispatches "msg", "event", "status" and "revoked" events;
// status is "connecting", "online" (synced), "offline" (waiting until
// retryAt to connect again) or "revoked".

const SUBPROTOCOL = "mayfly.v1";
const TOKEN_PREFIX = "mayfly.token.";
const CLOSE_TOKEN_REVOKED = 4001;
const REQUEST_TIMEOUT_MS = 15_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/** ProtocolError is a request answered by an error frame. */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

export class Conn extends EventTarget {
  /** tokenFn returns a promise of a fresh access token. */
  constructor(tokenFn) {
    super();
    this.tokenFn = tokenFn;
    this.ws = null;
    this.cursor = 0; // highest mailbox seq seen; the next sync starts after it
    this.pending = new Map(); // request id -> {resolve, reject, timer}
    this.nextID = 1;
    this.attempt = 0;
    this.stopped = false;
    this.status = "connecting";
    this.retryAt = 0; // when the next attempt starts, while offline
  }

  setStatus(s) {
    this.status = s;
    this.dispatchEvent(new CustomEvent("status", { detail: s }));
  }

  /** start connects and keeps the connection up until stop. */
  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.failPending("closed", "connection closed");
  }

  async connect() {
    this.setStatus("connecting");
    let token;
    try {
      token = await this.tokenFn();
    } catch (err) {
      return this.retry();
    }
    if (this.stopped) return;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws";
    const ws = new WebSocket(url, [SUBPROTOCOL, TOKEN_PREFIX + token]);
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev);
  }

  onClose(ws, ev) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.failPending("closed", "connection closed");
    if (ev.code === CLOSE_TOKEN_REVOKED) {
      this.stopped = true;
      this.setStatus("revoked");
      this.dispatchEvent(new CustomEvent("revoked"));
      return;
    }
    if (!this.stopped) this.retry();
  }

  retry() {
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    const delay = base / 2 + Math.random() * base / 2; // "equal jitter"
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.setStatus("offline");
  }

  /** retryNow skips the rest of the backoff and connects at once, when offline. */
  retryNow() {
    if (this.stopped || this.status !== "offline") return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    switch (f.type) {
      case "hello":
        this.attempt = 0;
        this.request({ type: "sync", cursor: this.cursor })
          .then((f) => {
            if (f.last_seq > this.cursor) this.cursor = f.last_seq;
            this.setStatus("online");
          })
          .catch(() => { /* the close handler reconnects */ });
        return;
      case "msg":
        if (f.seq > this.cursor) this.cursor = f.seq;
        this.dispatchEvent(new CustomEvent("msg", { detail: f }));
        return;
      case "event":
        this.dispatchEvent(new CustomEvent("event", { detail: f.event }));
        return;
      case "error":
        if (!f.id || !this.pending.has(f.id)) return;
        this.settle(f.id, null, new ProtocolError(f.error.code, f.error.message));
        return;
      default:
        if (f.id && this.pending.has(f.id)) this.settle(f.id, f, null);
    }
  }

  settle(id, value, err) {
    const p = this.pending.get(id);
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err); else p.resolve(value);
  }

  failPending(code, message) {
    for (const id of [...this.pending.keys()]) this.settle(id, null, new ProtocolError(code, message));
  }

  /** request sends frame with a fresh id and resolves with its answer frame. */
  request(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ProtocolError("unavailable", "not connected"));
    }
    const id = "r" + this.nextID++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, null, new ProtocolError("timeout", "no answer")), REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }
}
