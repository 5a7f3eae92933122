// Tiny DOM builder. Text is always inserted as text nodes and attributes
// through setAttribute, never through HTML parsing, so the page works under
// the Trusted Types policy of its CSP (no string ever reaches innerHTML).

/**
 * h returns a new element: props are attributes ("class", plain names),
 * event listeners ("onclick": fn) and booleans (true sets, false omits);
 * children are nodes or strings, nested arrays allowed.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** replace empties el and fills it with children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}
