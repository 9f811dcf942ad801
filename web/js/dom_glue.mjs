// The DOM for the UI's Python (web/app/chatui, MicroPython), registered as `dom_js`.
//
// Python describes what to show as JSON: a node is a string (text), null, or
// [tag, {attributes}, ...children]. This module builds it with createElement and
// textContent only (never innerHTML from data), so text from the network cannot become
// markup. One call per change keeps the crossings between Python and JS few.
//
// Events are delegated: an element with data-on-click="action" (or data-on-submit,
// data-on-input, data-on-change) calls the Python dispatcher with (kind, action,
// data-arg, JSON of extra values: a form's fields for submit, the value for input).
// Browser mechanics stay here: Enter-to-send, hold-to-confirm buttons, modal dialogs
// (focus trap, Escape, backdrop, focus return), drafts cleared on pagehide.

const HOLD_MS = 2000;
let dispatcher = null;

function dispatch(kind, action, arg, extra) {
  if (dispatcher !== null && action) dispatcher(kind, action, arg ?? "", JSON.stringify(extra ?? {}));
}

function build(node) {
  if (node === null || node === undefined || node === false) return null;
  if (typeof node === "string" || typeof node === "number") return document.createTextNode(String(node));
  const [tag, attrs, ...children] = node;
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === false || value === undefined) continue;
    if (name === "value") el.value = String(value);
    else if (name === "svg") el.replaceChildren(qrSvg(String(value)));
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children) {
    if (Array.isArray(child) && typeof child[0] !== "string") {
      appendAll(el, child); // a list of nodes
    } else {
      const built = build(child);
      if (built !== null) el.appendChild(built);
    }
  }
}

function nodes(json) {
  const spec = JSON.parse(json);
  const frag = document.createDocumentFragment();
  appendAll(frag, [spec]);
  return frag;
}

const $ = (selector) => document.querySelector(selector);

// --- QR code (qrcode-generator, drawn here: SVG from the library's own output) ------
let qrcodeLib = null;
export function setQrLibrary(lib) {
  qrcodeLib = lib;
}
function qrSvg(text) {
  const qr = qrcodeLib(0, "M");
  qr.addData(text);
  qr.make();
  const tpl = document.createElement("template");
  tpl.innerHTML = qr.createSvgTag({ cellSize: 4, margin: 2, scalable: true }); // the library's markup only
  return tpl.content;
}

// --- dialogs ------------------------------------------------------------------------
let dialog = null;
let opener = null;

function focusables(root) {
  return [...root.querySelectorAll(
    'a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])',
  )].filter((el) => el.offsetParent !== null || el === document.activeElement);
}

function openDialog(json, labelId) {
  closeDialog(false);
  opener = document.activeElement;
  const d = document.createElement("dialog");
  d.className = "dialog";
  d.id = "dialog";
  if (labelId) d.setAttribute("aria-labelledby", labelId);
  d.appendChild(nodes(json));
  d.addEventListener("cancel", (ev) => {
    ev.preventDefault(); // Escape: close our way (focus return, notify)
    closeDialog(true);
  });
  d.addEventListener("click", (ev) => {
    // A click on the dialog element itself is on its backdrop (the content fills it).
    if (ev.target === d) {
      const r = d.getBoundingClientRect();
      const inside = ev.clientX >= r.left && ev.clientX <= r.right && ev.clientY >= r.top && ev.clientY <= r.bottom;
      if (!inside) closeDialog(true);
    }
  });
  d.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      closeDialog(true);
    } else if (ev.key === "Tab") {
      const items = focusables(d);
      if (items.length === 0) return ev.preventDefault();
      const first = items[0];
      const last = items[items.length - 1];
      if (ev.shiftKey && (document.activeElement === first || !d.contains(document.activeElement))) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && (document.activeElement === last || !d.contains(document.activeElement))) {
        ev.preventDefault();
        first.focus();
      }
    }
  });
  const host = document.getElementById("modal");
  host.replaceChildren(d);
  host.hidden = false;
  dialog = d;
  d.showModal();
  const first = d.querySelector("[autofocus], input, textarea, button.primary") ?? focusables(d)[0];
  first?.focus();
}

function closeDialog(notify) {
  if (dialog === null) return;
  const d = dialog;
  dialog = null;
  if (d.open) d.close();
  d.remove();
  document.getElementById("modal").hidden = true;
  const back = opener;
  opener = null;
  if (back instanceof HTMLElement && back.isConnected) back.focus();
  if (notify) dispatch("dialog", "dialog-closed", "", {});
}

// --- delegated events ------------------------------------------------------------------
function formValues(form) {
  const out = {};
  for (const el of form.elements) if (el.name) out[el.name] = el.value;
  return out;
}

function listen() {
  document.addEventListener("click", (ev) => {
    const el = ev.target.closest("[data-on-click]");
    if (el === null || el.disabled || el.classList.contains("hold")) return;
    dispatch("click", el.dataset.onClick, el.dataset.arg, {});
  });
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    ev.preventDefault(); // never navigate: the app handles every form
    if (form.dataset.onSubmit) dispatch("submit", form.dataset.onSubmit, form.dataset.arg, formValues(form));
  });
  document.addEventListener("input", (ev) => {
    const el = ev.target.closest("[data-on-input]");
    if (el !== null) dispatch("input", el.dataset.onInput, el.dataset.arg, { value: el.value });
  });
  document.addEventListener("keydown", (ev) => {
    const el = ev.target;
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && el.matches?.("textarea[data-enter-submits]")) {
      ev.preventDefault();
      el.form?.requestSubmit();
    }
  });
  // Hold-to-confirm (the panic wipe): pointer or Space/Enter held for HOLD_MS.
  const timers = new WeakMap();
  const startHold = (el) => {
    if (timers.has(el) || el.disabled) return;
    el.classList.add("holding");
    timers.set(el, setTimeout(() => {
      timers.delete(el);
      el.classList.remove("holding");
      dispatch("click", el.dataset.onClick, el.dataset.arg, {});
    }, HOLD_MS));
  };
  const cancelHold = (el) => {
    el.classList.remove("holding");
    clearTimeout(timers.get(el));
    timers.delete(el);
  };
  document.addEventListener("pointerdown", (ev) => {
    const el = ev.target.closest?.(".hold[data-on-click]");
    if (el) startHold(el);
  });
  for (const type of ["pointerup", "pointercancel"]) {
    document.addEventListener(type, () => document.querySelectorAll(".hold.holding").forEach(cancelHold));
  }
  document.addEventListener("pointerout", (ev) => {
    const el = ev.target.closest?.(".hold.holding");
    if (el && !el.contains(ev.relatedTarget)) cancelHold(el);
  });
  document.addEventListener("keydown", (ev) => {
    const el = ev.target.closest?.(".hold[data-on-click]");
    if (el && (ev.key === " " || ev.key === "Enter")) {
      ev.preventDefault();
      if (!ev.repeat) startHold(el);
    }
  });
  document.addEventListener("keyup", (ev) => {
    const el = ev.target.closest?.(".hold.holding");
    if (el && (ev.key === " " || ev.key === "Enter")) cancelHold(el);
  });
  // Scrolled to the top of a history that has more: ask for the page before.
  document.addEventListener("scroll", (ev) => {
    const el = ev.target;
    if (el instanceof HTMLElement && el.dataset.onTop && el.scrollTop < 40) {
      dispatch("scroll", el.dataset.onTop, el.dataset.arg, {});
    }
  }, true);
  // Drafts never outlive the page: nothing typed is left for the browser to save.
  window.addEventListener("pagehide", clearDrafts);
}

/** Empties every field that can hold message text (composer, dialogs). */
export function clearDrafts() {
  for (const el of document.querySelectorAll("textarea, input:not([type=hidden])")) el.value = "";
}

/** The functions the UI's Python calls (as `dom_js`). */
export const api = Object.freeze({
  listen(fn) {
    dispatcher = fn;
  },
  render(selector, json) {
    const el = $(selector);
    if (el !== null) el.replaceChildren(nodes(json));
  },
  append(selector, json) {
    $(selector)?.appendChild(nodes(json));
  },
  /** Inserts before the first child, keeping what was on screen in place. */
  prepend(selector, json) {
    const el = $(selector);
    if (el === null) return;
    const before = el.scrollHeight;
    el.insertBefore(nodes(json), el.firstChild);
    el.scrollTop += el.scrollHeight - before;
  },
  replace(selector, json) {
    $(selector)?.replaceWith(nodes(json));
  },
  remove(selector) {
    for (const el of document.querySelectorAll(selector)) el.remove();
  },
  count(selector) {
    return document.querySelectorAll(selector).length;
  },
  set_text(selector, text) {
    const el = $(selector);
    if (el !== null) el.textContent = text;
  },
  set_attr(selector, name, value) {
    for (const el of document.querySelectorAll(selector)) {
      if (value === null) el.removeAttribute(name);
      else el.setAttribute(name, value);
    }
  },
  set_value(selector, value) {
    const el = $(selector);
    if (el !== null) el.value = value;
  },
  value(selector) {
    return $(selector)?.value ?? "";
  },
  focus(selector) {
    $(selector)?.focus();
  },
  show_error(selector, text) {
    const el = $(selector);
    if (el === null) return;
    el.textContent = text;
    el.hidden = !text;
  },
  near_bottom(selector) {
    const el = $(selector);
    return el === null || el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  },
  scroll_bottom(selector) {
    const el = $(selector);
    if (el !== null) el.scrollTop = el.scrollHeight;
  },
  set_state(state, screen) {
    if (document.body.dataset.state === "loading") performance.mark("ui:usable");
    document.body.dataset.state = state;
    document.body.dataset.screen = screen;
  },
  announce(text) {
    const el = document.getElementById("live");
    if (el !== null) el.textContent = text;
  },
  busy(text) {
    const el = document.getElementById("busy");
    el.querySelector(".busy-text").textContent = text;
    el.hidden = !text;
  },
  open_dialog: openDialog,
  close_dialog: () => closeDialog(false),
  dialog_open: () => dialog !== null,
  clear_drafts: clearDrafts,
  tz_offset_minutes: () => new Date().getTimezoneOffset(),
  now: () => Date.now() / 1000,
  reload: () => location.reload(),
});

export function install() {
  listen();
}
