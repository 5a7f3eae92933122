// The connection banner: says plainly when the page has lost the server
// (with a countdown to the next attempt and "Try now"), and when it is
// back. Presence and the composer follow conn.status themselves.

import { h, replace } from "./dom.js";

// BACK_MS is how long "Connected again" stays up.
const BACK_MS = 4000;

export class ConnectionBanner {
  /** conn is the page's ws.Conn. */
  constructor(conn) {
    this.conn = conn;
    this.el = h("div", { id: "conn-banner", class: "conn-banner", role: "status", "aria-live": "polite", hidden: true });
    this.wasOnline = false;
    this.lost = false;
    conn.addEventListener("status", () => this.update());
  }

  update() {
    const s = this.conn.status;
    if (s === "online") {
      clearTimeout(this.hideTimer);
      if (this.lost) {
        this.show("back", "Connected again. Messages, friends and presence are up to date.");
        this.hideTimer = setTimeout(() => { this.el.hidden = true; }, BACK_MS);
      } else {
        this.el.hidden = true;
      }
      this.wasOnline = true;
      this.lost = false;
      return;
    }
    if (s === "revoked") { this.el.hidden = true; return; }
    if (!this.wasOnline && s === "connecting" && !this.lost) return; // the first connect
    this.lost = true;
    clearTimeout(this.hideTimer);
    this.tick();
  }

  /** tick refreshes the countdown to the next attempt; call it every second. */
  tick() {
    if (!this.lost) return;
    const wait = Math.max(0, Math.ceil((this.conn.retryAt - Date.now()) / 1000));
    const when = this.conn.status === "offline" && wait > 0 ? `Trying again in ${wait} s.` : "Connecting…";
    this.show("lost", "Not connected to the server. Sending is off and presence is unknown until it is back. " + when,
      this.conn.status === "offline" && h("button", { id: "conn-retry", class: "link", onclick: () => this.conn.retryNow() }, "Try now"));
  }

  show(kind, text, button) {
    const sig = kind + text;
    if (this.sig === sig && !this.el.hidden) return; // keep the button under a pointer
    this.sig = sig;
    this.el.className = "conn-banner " + kind;
    this.el.dataset.state = kind;
    replace(this.el, h("span", {}, text), button);
    this.el.hidden = false;
  }
}
