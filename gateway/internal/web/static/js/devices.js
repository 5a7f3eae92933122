// The devices dialog: the user's devices, which of them the signed device
// list names (docs/envelope.md), revoke, on the primary device (the one
// holding the identity key) approving a new device by its link code, and
// the deletion of the whole account.

import * as account from "./account.js";
import * as api from "./api.js";
import * as identity from "./identity.js";
import { h, replace } from "./dom.js";
import { approve } from "./link.js";
import { errorText, showError, toast, toastError } from "./notify.js";

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class DevicesDialog {
  constructor(client, session, onSelfRevoked, id, onDeleteAccount) {
    this.client = client;
    this.session = session;
    this.onSelfRevoked = onSelfRevoked;
    this.id = id;
    this.onDeleteAccount = onDeleteAccount;
    this.list = h("ul", { class: "list devices", id: "devices" });
    const code = h("input", { id: "link-approve-code", placeholder: "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY", maxlength: 40, autocomplete: "off" });
    const add = h("form", { id: "link-approve", class: "add-friend" }, code, h("button", { type: "submit" }, "Add a device"));
    add.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await approve(this.client, this.id, code.value);
        code.value = "";
        toast("Device added. It logs in by itself.");
        await this.refresh();
      } catch (x) { toastError(x); }
    });
    this.el = h("dialog", { id: "devices-dialog" },
      h("h2", {}, "Your devices"),
      h("p", { class: "muted" }, id.ik
        ? "This browser holds your identity key: it alone adds and revokes devices. Each device has its own keys; a revoked device can never log in again, and nothing sent after the revocation is sealed for it."
        : "Only your first device (the one holding your identity key) can add devices. Revoking locks a device out for good."),
      this.list,
      id.ik && [h("h3", {}, "Add a device"), h("p", { class: "muted" }, "On the new device choose \"Link\", then type the code it shows."), add],
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
      const raw = await api.deviceList(this.id.userID);
      const listed = new Set();
      if (raw) {
        const l = await identity.parseDeviceList(raw);
        await identity.verifyDeviceList(l, this.id.userID, this.id.ikPublic);
        for (const d of l.devices) listed.add(d.id);
      }
      replace(this.list, devices.map((d) => this.item(d, listed.has(d.device_id))));
    } catch (x) {
      const li = h("li", { class: "error" });
      showError(li, x);
      replace(this.list, li);
    }
  }

  item(d, listed) {
    return h("li", { class: "device", "data-device": d.device_id, "data-listed": String(listed) },
      h("div", {},
        h("strong", {}, d.name), d.current && h("span", { class: "badge" }, "this device"),
        !listed && h("span", { class: "badge warn" }, "not in the signed list"),
        h("div", { class: "muted small" }, `added ${dateFmt.format(new Date(d.created_at))} · last seen ${dateFmt.format(new Date(d.last_seen_at))}`)),
      // Only the primary revokes other devices; any device may revoke itself.
      (this.id.ik || d.current) && h("button", { class: "danger revoke", onclick: () => this.revoke(d) }, "Revoke"));
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
    const what = d.current ? "this device (it can never log in again)" : `"${d.name}" (it can never log in again)`;
    if (!confirm(`Revoke ${what}?`)) return;
    try {
      await account.revokeDevice(this.client, this.id, d.device_id);
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
