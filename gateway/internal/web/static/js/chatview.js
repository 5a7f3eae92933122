// The chat pane: the open friend's presence and safety number, the
// messages with their burn state and countdown to the 55-minute limit,
// recall of unread sent messages, and the composer.

import { h, replace } from "./dom.js";
import { MESSAGE_TTL_MS, safeType } from "./messenger.js";
import { toast, toastError } from "./notify.js";
import { MAX_FILES, MAX_FILE_SIZE } from "./payload.js";
import { Recorder } from "./recorder.js";

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * presenceOf is what the page knows of a friend's presence: "online",
 * "offline", or "unknown" while the page is not connected (what it last
 * heard may no longer be true).
 */
export function presenceOf(m, f) {
  if (m.conn.status !== "online") return "unknown";
  return f.online ? "online" : "offline";
}

function presenceText(m, f) {
  const p = presenceOf(m, f);
  if (p === "unknown") return "presence unknown: not connected";
  if (p === "online") return "online";
  if (f.lastSeen) return "last seen " + timeFmt.format(new Date(f.lastSeen));
  return "offline";
}

const STATUS_TEXT = {
  sending: "sending…",
  sent: "sent",
  delivered: "delivered · unread",
  read: "read · burned",
  recalled: "recalled",
  failed: "not sent",
  unread: "new",
  unreadable: "cannot be opened here",
};

export class ChatView {
  constructor(m) {
    this.m = m;
    this.peer = null; // the peer the layout was built for
    this.el = h("section", { class: "chat", id: "chat" });
    this.showSafety = false;
    this.placeholder();
  }

  placeholder() {
    replace(this.el, h("div", { class: "empty" },
      h("p", {}, "Pick a friend to chat with."),
      h("p", { class: "muted" }, "Messages are encrypted in this page, kept by the server for at most 55 minutes, and burn as soon as they have been read.")));
  }

  /** render brings the pane up to date with the messenger state. */
  render() {
    const id = this.m.openChat;
    const f = id && this.m.friends.get(id);
    if (!f) {
      if (this.peer) { this.peer = null; this.placeholder(); }
      return;
    }
    if (this.peer !== id) this.build(f);
    this.renderHead(f);
    this.renderComposer();
    this.renderMessages(f);
  }

  /** renderComposer turns sending off while the page is not connected. */
  renderComposer() {
    const off = this.m.conn.status !== "online";
    if (this.text.disabled === off) return;
    this.text.disabled = off;
    this.sendBtn.disabled = off;
    this.attachBtn.disabled = off;
    this.recordBtn.disabled = off && !this.recorder.active;
    this.text.placeholder = off ? "Not connected: you can send again once the connection is back" : `Message @${this.m.friends.get(this.peer).handle}`;
    if (!off) this.text.focus();
  }

  build(f) {
    this.peer = f.user_id;
    this.shown = 0;
    this.headSig = this.listSig = null;
    this.showSafety = false;
    this.head = h("header", { class: "chat-head" });
    this.notice = h("div", { class: "notices" });
    this.list = h("ol", { class: "messages", id: "messages", "aria-live": "polite" });
    this.text = h("textarea", { id: "compose-text", rows: 2, maxlength: 4000, placeholder: `Message @${f.handle}`, "aria-label": "Message" });
    this.sendBtn = h("button", { type: "submit", class: "primary", id: "send-btn" }, "Send");
    this.pending = []; // files chosen for the next message: {name, type, data}
    this.fileInput = h("input", { type: "file", id: "file-input", multiple: true, hidden: true,
      onchange: () => this.addFiles(this.fileInput.files) });
    this.attachBtn = h("button", { type: "button", id: "attach-btn", title: "Attach files (25 MiB each)", "aria-label": "Attach files",
      onclick: () => this.fileInput.click() }, "File");
    this.recorder = new Recorder();
    this.recordBtn = h("button", { type: "button", id: "record-btn", title: "Record a voice note", "aria-label": "Record a voice note",
      onclick: () => this.toggleRecording() }, "Voice");
    this.chips = h("div", { class: "chips", id: "pending-files" });
    const form = h("form", { class: "composer", id: "composer" },
      h("div", { class: "compose-main" }, this.chips, this.text),
      this.fileInput, this.attachBtn, this.recordBtn, this.sendBtn);
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    this.text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.submit(); }
    });
    replace(this.el, this.head, this.notice, this.list, form);
    this.text.focus();
  }

  submit() {
    const text = this.text.value.trim();
    const files = this.pending;
    if ((!text && files.length === 0) || this.text.disabled) return;
    this.text.value = "";
    this.pending = [];
    this.renderChips();
    this.m.send(this.peer, text, files).catch((x) => toastError(x));
  }

  /** addFiles reads chosen files into the pending list, refusing any over the limits. */
  async addFiles(list) {
    for (const file of [...list]) {
      if (this.pending.length >= MAX_FILES) { toast(`A message carries at most ${MAX_FILES} files.`); break; }
      if (file.size > MAX_FILE_SIZE) { toastError({ code: "attachment_too_large" }); continue; }
      this.pending.push({ name: file.name, type: file.type || "", data: new Uint8Array(await file.arrayBuffer()) });
    }
    this.fileInput.value = "";
    this.renderChips();
  }

  renderChips() {
    replace(this.chips, this.pending.map((f, i) => h("span", { class: "chip", "data-name": f.name },
      f.name + " · " + sizeText(f.data.byteLength),
      h("button", { type: "button", class: "link", "aria-label": "Remove " + f.name,
        onclick: () => { this.pending.splice(i, 1); this.renderChips(); } }, "✕"))));
  }

  /** toggleRecording starts a voice note, or stops it and sends it at once. */
  async toggleRecording() {
    try {
      if (!this.recorder.active) {
        await this.recorder.start();
        this.recordBtn.classList.add("recording");
        this.recordBtn.textContent = "Stop";
        return;
      }
      const note = await this.recorder.stop();
      this.recordBtn.classList.remove("recording");
      this.recordBtn.textContent = "Voice";
      if (note.data.byteLength > 0) this.m.send(this.peer, "", [note]).catch((x) => toastError(x));
    } catch (x) {
      this.recordBtn.classList.remove("recording");
      this.recordBtn.textContent = "Voice";
      toastError(x);
    }
  }

  renderHead(f) {
    const sig = JSON.stringify([f.user_id, presenceOf(this.m, f), f.lastSeen, f.keysChanged, f.safetyNumber, f.fingerprint, this.showSafety]);
    const accept = () => this.m.acceptKeys(f.user_id).then(() => toast(`Accepted @${f.handle}'s identity key.`));
    if (this.headSig === sig) return;
    this.headSig = sig;
    const safety = this.showSafety && h("div", { class: "safety", id: "safety" },
      h("p", {}, `Compare this number with @${f.handle} in person or over another channel. If it matches, nobody is in between.`),
      h("p", { class: "fingerprint big", id: "safety-number" }, f.safetyNumber),
      h("dl", {},
        h("dt", {}, "You"), h("dd", { class: "fingerprint" }, this.m.me.fingerprint),
        h("dt", {}, "@" + f.handle), h("dd", { class: "fingerprint" }, f.localFingerprint),
        f.keysChanged && [h("dt", {}, "before"), h("dd", { class: "fingerprint", id: "pinned-fingerprint" }, f.pinnedFingerprint)]),
      f.keysChanged && h("button", { class: "primary", id: "accept-keys", onclick: accept }, "The numbers match: accept the new key"),
      f.fingerprint !== f.localFingerprint && h("p", { class: "error" }, "The server's fingerprint for this friend differs from the keys it sent. Do not trust this chat."));
    replace(this.head,
      h("div", { class: "who" },
        h("span", { class: "dot " + presenceOf(this.m, f) }),
        h("h2", {}, "@" + f.handle),
        h("span", { class: "presence", id: "presence", "data-presence": presenceOf(this.m, f) }, presenceText(this.m, f))),
      h("div", { class: "head-actions" },
        h("button", { id: "safety-btn", onclick: () => { this.showSafety = !this.showSafety; this.render(); } },
          this.showSafety ? "Hide safety number" : "Safety number"),
        h("button", { class: "danger", id: "unfriend-btn", onclick: () => this.unfriend(f) }, "Remove")),
      safety);
    replace(this.notice, f.keysChanged && h("div", { class: "warning", id: "keys-changed" },
      `@${f.handle}'s identity key changed, or their devices are not signed by it. Nothing is sent to them until you compare the new safety number and accept it.`,
      h("button", { id: "verify-keys", onclick: () => { this.showSafety = true; this.headSig = null; this.render(); } }, "Compare safety number"),
      h("button", { id: "accept-keys-anyway", onclick: accept }, "Accept without comparing")));
  }

  async unfriend(f) {
    if (!confirm(`Remove @${f.handle} from your friends?`)) return;
    try {
      await this.m.api.unfriend(f.handle);
      await this.m.loadFriends();
    } catch (x) { toastError(x); }
  }

  renderMessages(f) {
    const msgs = this.m.messages(f.user_id);
    const sig = JSON.stringify(msgs.map((m) => [m.key, m.status, m.seq, m.error, (m.files || []).map((f) => [f.state, f.error])]));
    if (this.listSig === sig) return;
    this.listSig = sig;
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const grew = msgs.length > (this.shown || 0);
    this.shown = msgs.length;
    replace(this.list, msgs.length === 0
      ? h("li", { class: "hint" }, `No messages. What you send @${f.handle} burns once read, or after 55 minutes.`)
      : msgs.map((msg) => this.message(msg)));
    if (atBottom || grew) this.list.scrollTop = this.list.scrollHeight;
    this.tick();
  }

  message(msg) {
    const live = msg.status === "sent" || msg.status === "delivered" || msg.status === "unread" || msg.status === "sending";
    const recall = msg.self && (msg.status === "sent" || msg.status === "delivered") && msg.seq && h("button", {
      class: "link recall", onclick: () => this.m.recall(this.peer, msg).catch((x) => toastError(x)),
    }, "Recall");
    const retry = msg.self && msg.status === "failed" && msg.envelope && h("button", {
      class: "link retry", onclick: () => this.m.deliver(this.peer, msg),
    }, "Retry");
    const text = msg.status === "recalled" ? h("p", { class: "text gone" }, "Message recalled")
      : (msg.text || !msg.files) && h("p", { class: "text" }, msg.text);
    const files = msg.status !== "recalled" && (msg.files || []).map((f) => this.file(f));
    return h("li", {
      class: `msg ${msg.self ? "out" : "in"} ${msg.status}`, "data-mid": msg.mid, "data-status": msg.status,
    }, h("div", { class: "bubble" }, text, files,
      h("div", { class: "meta" },
        h("time", {}, timeFmt.format(new Date(msg.ts))),
        h("span", { class: "state" }, STATUS_TEXT[msg.status] + (msg.error ? ` (${msg.error})` : "")),
        live && h("span", { class: "countdown", "data-expires": String(msg.ts + MESSAGE_TTL_MS), title: "burns unread after 55 minutes" }),
        recall, retry)));
  }

  /**
   * file renders one attached file: a picture inline, a voice note or other
   * audio as a player, anything else as a download link; a file not yet
   * here shows its state.
   */
  file(f) {
    const label = `${f.name || "file"} · ${sizeText(f.size)}`;
    const attrs = { class: "file", "data-state": f.state, "data-attachment-id": f.id || "", "data-name": f.name };
    if (f.state === "remote") {
      return h("div", attrs, h("button", { class: "link", onclick: () => this.m.fetchFile(f) }, "Download " + label));
    }
    if (f.state === "pending") return h("div", attrs, h("span", { class: "muted" }, "Downloading " + label + "…"));
    if (f.state === "error") return h("div", { ...attrs, class: "file error" }, `${label}: ${errorSentence(f.error)}`);
    const download = h("a", { href: f.url, download: f.name || "file", class: "download" }, "Save " + label);
    if (f.url && f.type.startsWith("image/") && safeInline(f.type)) {
      return h("figure", attrs, h("img", { src: f.url, alt: f.name, class: "picture" }), h("figcaption", {}, download));
    }
    if (f.url && f.type.startsWith("audio/") && safeInline(f.type)) {
      return h("div", attrs, h("audio", { src: f.url, controls: true, preload: "metadata", class: "voice" }), download);
    }
    return h("div", attrs, download);
  }

  /** tick updates the countdowns to each unread message's 55-minute limit. */
  tick() {
    const now = Date.now();
    for (const el of this.el.querySelectorAll(".countdown")) {
      el.textContent = clock(Number(el.dataset.expires) - now) + " left";
    }
  }
}

function sizeText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function errorSentence(code) {
  if (code === "unknown_attachment") return "gone (read, recalled or expired)";
  if (code === "file_digest" || code === "file_decrypt") return "not what the sender sent; not opened";
  return "could not be downloaded (" + code + "); the message stays unread";
}

function safeInline(type) {
  return safeType(type) === type;
}
