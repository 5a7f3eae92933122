// Mayfly web client: boot, welcome (register or log in) and the signed-in
// shell. Chats are rendered by chatview.js, state lives in messenger.js.

import * as api from "./api.js";
import * as account from "./account.js";
import * as keystore from "./keystore.js";
import { h, replace } from "./dom.js";
import { Messenger } from "./messenger.js";
import { ChatView, presenceOf } from "./chatview.js";
import { ConnectionBanner } from "./connection.js";
import { DevicesDialog } from "./devices.js";
import { errorText, showError, toast, toastError } from "./notify.js";
import { PendingLink, formatCode } from "./link.js";

const HANDLE = /^[A-Za-z0-9_]{3,32}$/;
const root = document.getElementById("app");

function defaultDeviceName() {
  const p = (navigator.userAgentData && navigator.userAgentData.platform) || "";
  return p ? `Web browser (${p})` : "Web browser";
}

async function boot() {
  const identity = await account.upgrade(await keystore.loadIdentity());
  const session = await keystore.loadSession();
  if (identity && session && session.userID === identity.userID) return signedIn(identity, session);
  welcome(identity);
}

function brand() {
  return h("div", { class: "brand" }, h("img", { src: "/assets/icon.svg", alt: "" }), h("span", {}, "Mayfly"));
}

/** welcome shows registration, or login for the identity already in this browser. */
function welcome(identity) {
  const err = h("p", { class: "error", id: "welcome-error", role: "alert" });
  const device = h("input", { id: "device-name", value: defaultDeviceName(), maxlength: 64, required: true });
  const busy = (form, on) => form.querySelectorAll("button,input").forEach((el) => { el.disabled = on; });
  let body;
  if (identity) {
    const form = h("form", { id: "login-form" },
      h("label", {}, "Device name", device),
      h("button", { type: "submit", class: "primary" }, `Log in as @${identity.handle}`));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      busy(form, true);
      try {
        const s = await account.login(identity, device.value.trim());
        signedIn(identity, s);
      } catch (x) { showError(err, x); busy(form, false); }
    });
    const forget = h("button", { class: "link", id: "forget", type: "button", onclick: async () => {
      if (!confirm(`Delete @${identity.handle}'s keys from this browser? Without another device holding them, the account cannot be used again.`)) return;
      await keystore.forget();
      welcome(null);
    } }, "Forget this identity");
    body = [h("h2", {}, `Welcome back, @${identity.handle}`),
      h("p", { class: "muted" }, "Your keys are in this browser. Log in to start a session on this device."),
      h("p", { class: "fingerprint" }, identity.fingerprint), form, forget];
  } else {
    const handle = h("input", { id: "reg-handle", placeholder: "alice", autocomplete: "username", required: true, maxlength: 32 });
    const form = h("form", { id: "register-form" },
      h("label", {}, "Handle", handle),
      h("label", {}, "Device name", device),
      h("button", { type: "submit", class: "primary" }, "Create account"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!HANDLE.test(handle.value)) { err.textContent = "A handle is 3-32 letters, digits or underscores."; return; }
      busy(form, true);
      try {
        signedIn(...await account.register(handle.value, device.value.trim()));
      } catch (x) { showError(err, x); busy(form, false); }
    });
    body = [h("h2", {}, "Create your account"),
      h("p", { class: "muted" }, "No phone number, no e-mail: just a handle. Your keys are made in this browser with WebCrypto and the private halves never leave it."),
      form, h("button", { class: "link", id: "link-start", type: "button", onclick: () => linkDevice(device.value.trim()) },
        "Link this browser to an account you already have")];
  }
  replace(root, h("main", { class: "welcome" }, h("div", { class: "card" },
    brand(), h("p", { class: "tagline" }, "Private one-to-one messages that burn after reading."), body, err)));
}

/**
 * linkDevice makes this browser a new device of an existing account: it
 * shows the link code to approve on the primary device (web: Devices, Add
 * a device; CLI: mayfly device approve CODE), waits, and logs in.
 */
async function linkDevice(deviceName) {
  const err = h("p", { class: "error", id: "welcome-error", role: "alert" });
  const cancel = h("button", { class: "link", id: "link-cancel", type: "button" }, "Cancel");
  const show = (...body) => replace(root, h("main", { class: "welcome" }, h("div", { class: "card" }, brand(), ...body, err, cancel)));
  let pending = null;
  cancel.onclick = () => { if (pending) pending.stopped = true; welcome(null); };
  show(h("p", { class: "muted" }, "Asking the server for a link code…"));
  try {
    pending = await PendingLink.start();
    show(h("h2", {}, "Link this browser"),
      h("p", { class: "muted" }, "On the device that created the account, approve this code: in the web client under Devices, Add a device; with the CLI, mayfly device approve CODE. It expires in ten minutes."),
      h("p", { class: "fingerprint big", id: "link-code" }, formatCode(pending.shown)));
    const id = await pending.wait();
    await keystore.saveIdentity(id);
    signedIn(id, await account.login(id, deviceName));
  } catch (x) {
    if (pending && pending.stopped) return;
    err.textContent = errorText(x);
  }
}

/** signedIn builds the main shell for a session. */
function signedIn(identity, session) {
  const client = new api.Client(session, () => endSession("Your session on this device has ended."));
  const m = new Messenger(identity, session, client);
  const status = h("span", { id: "conn-status", class: "status" });
  const devices = new DevicesDialog(client, session, () => endSession("This device was revoked."), identity, deleteAccount);
  const topbar = h("header", { class: "topbar" }, brand(),
    h("div", { class: "me" }, h("span", { id: "me-handle" }, "@" + identity.handle),
      h("span", { class: "fingerprint small", title: "Your key fingerprint" }, identity.fingerprint)),
    status,
    h("button", { id: "devices-btn", onclick: () => devices.open() }, "Devices"),
    h("button", { id: "logout-btn", onclick: () => { tabs.postMessage(session.deviceID); endSession("Logged out."); } }, "Log out"));
  const sidebar = h("aside", { class: "sidebar" });
  const chat = new ChatView(m);
  const banner = new ConnectionBanner(m.conn);
  replace(root, h("div", { class: "shell" }, topbar, banner.el, sidebar, chat.el), devices.el);
  let ended = false;
  let deleting = false; // the session ends by the deletion: no "revoked" screen meanwhile
  function endSession(why) {
    if (ended || deleting) return;
    ended = true;
    tabs.close();
    m.stop();
    keystore.clearSession(session.deviceID).then(() => { welcome(identity); toast(why, "warn"); });
  }
  /** deleteAccount deletes the account on the server, then forgets it here. */
  async function deleteAccount(handle) {
    deleting = true;
    try {
      await client.deleteAccount(handle);
    } catch (x) {
      deleting = false;
      throw x;
    }
    ended = true;
    m.stop();
    await keystore.forget();
    welcome(null);
    toast(`The account @${handle} was deleted.`, "warn");
  }
  m.conn.addEventListener("revoked", () => endSession("This device was revoked."));
  // Logging out in one tab ends the session in the others too.
  const tabs = new BroadcastChannel("mayfly-session");
  tabs.onmessage = (e) => { if (e.data === session.deviceID) endSession("Logged out."); };
  // A page left for another keeps running in the back/forward cache: close
  // the socket (the device goes offline, as the person left), and start
  // afresh if the page is shown again.
  addEventListener("pagehide", () => { tabs.close(); m.conn.stop(); });
  addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
  m.addEventListener("devices", () => devices.refresh());
  m.addEventListener("change", () => {
    status.textContent = m.conn.status;
    status.className = "status " + m.conn.status;
    renderSidebar(sidebar, m);
    chat.render();
  });
  const tick = setInterval(() => { if (ended) clearInterval(tick); else { m.expire(); chat.tick(); banner.tick(); } }, 1000);
  m.start().catch((x) => toastError(x));
}

function renderSidebar(el, m) {
  // Re-render only on a visible change, so a click is never lost to a
  // re-render between mouse down and up.
  const sig = JSON.stringify([m.requests, m.openChat, [...m.friends.values()].map((f) =>
    [f.handle, presenceOf(m, f), f.keysChanged, m.unreadCount(f.user_id)])]);
  if (el.mayflySig === sig) return;
  el.mayflySig = sig;
  const input = h("input", { id: "friend-handle", placeholder: "Add a friend by handle", maxlength: 32, autocomplete: "off" });
  const add = h("form", { id: "add-friend", class: "add-friend" }, input, h("button", { type: "submit" }, "Add"));
  add.addEventListener("submit", async (e) => {
    e.preventDefault();
    const handle = input.value.trim();
    if (!HANDLE.test(handle)) return toast("A handle is 3-32 letters, digits or underscores.", "error");
    try {
      const res = await m.api.request(handle);
      toast(res.friend ? `You and @${handle} are now friends.` : `Friend request sent to @${handle}.`);
      await Promise.all([m.loadFriends(), m.loadRequests()]);
    } catch (x) { toastError(x); }
  });
  const act = (fn, okText) => async () => {
    try { await fn(); if (okText) toast(okText); await Promise.all([m.loadFriends(), m.loadRequests()]); } catch (x) { toastError(x); }
  };
  const incoming = (m.requests.incoming || []).map((r) => h("li", { class: "request", "data-handle": r.handle },
    h("span", {}, `@${r.handle} wants to be friends`),
    h("span", { class: "actions" },
      h("button", { class: "primary accept", onclick: act(() => m.api.accept(r.handle)) }, "Accept"),
      h("button", { class: "decline", onclick: act(() => m.api.decline(r.handle)) }, "Decline"))));
  const outgoing = (m.requests.outgoing || []).map((r) => h("li", { class: "request outgoing", "data-handle": r.handle },
    h("span", {}, `Waiting for @${r.handle}`),
    h("button", { class: "cancel", onclick: act(() => m.api.cancel(r.handle)) }, "Cancel")));
  const friends = [...m.friends.values()].map((f) => {
    const n = m.unreadCount(f.user_id);
    const p = presenceOf(m, f);
    return h("li", {},
      h("button", { class: "friend" + (m.openChat === f.user_id ? " active" : ""), "data-handle": f.handle, onclick: () => m.setOpenChat(f.user_id) },
        h("span", { class: "dot " + p, title: p === "unknown" ? "presence unknown: not connected" : p }),
        h("span", { class: "name" }, "@" + f.handle),
        f.keysChanged && h("span", { class: "badge warn", title: "keys changed" }, "!"),
        n > 0 && h("span", { class: "badge unread" }, String(n))));
  });
  const focused = document.activeElement && document.activeElement.id === "friend-handle";
  const typed = focused ? document.activeElement.value : "";
  replace(el, add,
    incoming.length > 0 && [h("h3", {}, "Requests"), h("ul", { id: "incoming", class: "list" }, incoming)],
    outgoing.length > 0 && [h("h3", {}, "Sent requests"), h("ul", { id: "outgoing", class: "list" }, outgoing)],
    h("h3", {}, `Friends (${m.friends.size}/20)`),
    friends.length > 0 ? h("ul", { id: "friends", class: "list" }, friends) : h("p", { class: "muted" }, "No friends yet. Add one by handle above."));
  if (focused) { input.value = typed; input.focus(); }
}

boot().catch((err) => {
  replace(root, h("p", { class: "boot error" }, "Mayfly could not start: " + errorText(err)));
});
