// The devices dialog: the user's logged-in devices, with revoke.

import { h, replace } from "./dom.js";
import { showError, toast, toastError } from "./notify.js";

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class DevicesDialog {
  constructor(client, session, onSelfRevoked) {
    this.client = client;
    this.session = session;
    this.onSelfRevoked = onSelfRevoked;
    this.list = h("ul", { class: "list devices", id: "devices" });
    this.el = h("dialog", { id: "devices-dialog" },
      h("h2", {}, "Your devices"),
      h("p", { class: "muted" }, "Every device shares your identity keys. Revoking one ends its session at once; it cannot send or read until someone logs it in again."),
      this.list,
      h("form", { method: "dialog" }, h("button", { class: "primary", id: "devices-close" }, "Close")));
  }

  async open() {
    if (!this.el.open) this.el.showModal();
    await this.refresh();
  }

  async refresh() {
    if (!this.el.open) return;
    try {
      const { devices } = await this.client.devices();
      replace(this.list, devices.map((d) => this.item(d)));
    } catch (x) {
      const li = h("li", { class: "error" });
      showError(li, x);
      replace(this.list, li);
    }
  }

  item(d) {
    return h("li", { class: "device", "data-device": d.device_id },
      h("div", {},
        h("strong", {}, d.name), d.current && h("span", { class: "badge" }, "this device"),
        h("div", { class: "muted small" }, `added ${dateFmt.format(new Date(d.created_at))} · last seen ${dateFmt.format(new Date(d.last_seen_at))}`)),
      h("button", { class: "danger revoke", onclick: () => this.revoke(d) }, "Revoke"));
  }

  async revoke(d) {
    const what = d.current ? "this device (you will be logged out)" : `"${d.name}"`;
    if (!confirm(`Revoke ${what}?`)) return;
    try {
      await this.client.revokeDevice(d.device_id);
    } catch (x) {
      return toastError(x);
    }
    if (d.current) {
      this.el.close();
      this.onSelfRevoked();
      return;
    }
    toast(`Revoked ${d.name}.`);
    await this.refresh();
  }
}
