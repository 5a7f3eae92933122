// The devices dialog: the user's logged-in devices, with revoke, and the
// deletion of the whole account.

import { h, replace } from "./dom.js";
import { showError, toast, toastError } from "./notify.js";

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class DevicesDialog {
  constructor(client, session, onSelfRevoked, onDeleteAccount) {
    this.client = client;
    this.session = session;
    this.onSelfRevoked = onSelfRevoked;
    this.onDeleteAccount = onDeleteAccount;
    this.list = h("ul", { class: "list devices", id: "devices" });
    this.el = h("dialog", { id: "devices-dialog" },
      h("h2", {}, "Your devices"),
      h("p", { class: "muted" }, "Every device shares your identity keys. Revoking one ends its session at once; it cannot send or read until someone logs it in again."),
      this.list,
      h("h3", {}, "Account"),
      h("p", { class: "muted" }, "Deleting your account removes your keys, devices, friends and every message you sent or received from the server, on every device. It cannot be undone."),
      h("button", { class: "danger", id: "delete-account", type: "button", onclick: () => this.deleteAccount() }, "Delete account…"),
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

  /** deleteAccount asks for the handle as confirmation, then deletes. */
  async deleteAccount() {
    const handle = this.session.handle;
    const typed = prompt(`Delete @${handle} for good? Your friends, messages and devices go with it. Type your handle to confirm:`);
    if (typed === null) return;
    if (typed.trim().toLowerCase() !== handle.toLowerCase()) return toast("The handle did not match; nothing was deleted.", "error");
    try {
      await this.onDeleteAccount(typed.trim());
    } catch (x) {
      return toast(errorText(x), "error");
    }
    this.el.close();
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
