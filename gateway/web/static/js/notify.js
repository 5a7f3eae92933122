// User-facing notices.

import { h } from "./dom.js";

/** errorText turns an API or protocol error into one line for people. */
export function errorText(err) {
  if (err && err.code) return `${err.code}: ${err.message}`;
  return String((err && err.message) || err);
}

/** toast shows a short notice at the bottom of the page for five seconds. */
export function toast(text, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast ${kind}`, role: "status" }, text);
  box.append(el);
  setTimeout(() => el.remove(), 5000);
}
