// The page's entry. Two runtimes, each where it belongs:
//
// * the client core (Pyodide: MLS, the vault, the messenger) in a Web Worker
//   (core_client.mjs / core_worker.mjs), started first since it takes longest;
// * the UI, in Python too, on MicroPython (a ~0.4 MB WebAssembly runtime that starts
//   in tens of milliseconds) on the main thread: web/app/chatui.
//
// The first screen (unlock, or the first run) needs only MicroPython and the UI; the
// worker loads Pyodide and imports the core meanwhile, while the user types.

import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import qrcode from "qrcode-generator";
import { CoreClient } from "./core_client.mjs";
import { api as dom, install as installDom, setQrLibrary, clearDrafts } from "./dom_glue.mjs";
import manifest from "./manifest.mjs";
import { passwords } from "./passwords.mjs";

performance.mark("boot:start"); // for bench/bench_web.py
const ROOT = new URL("../", import.meta.url);
// How long a new page waits for the device's lock before offering the hand-over (a
// reload's old worker may still be shutting down).
const LOCK_WAIT_MS = 2500;

const status = (text) => {
  const el = document.getElementById("loading-text");
  if (el) el.textContent = text;
};
const fatal = (text) => {
  document.body.dataset.state = "error";
  status(text);
};

window.addEventListener("error", (ev) => {
  if (document.body.dataset.state === "loading") fatal(`Could not start: ${ev.message}`);
});

// Events reach the UI in batches, at most one batch per frame (in order; events wait
// here until the UI listens). A burst of incoming messages arrives as one worker message
// each, and handling each alone (a layout read, a DOM append, a mark-read request,
// the sidebar) made main-thread tasks of over 100 ms; the UI now draws a batch once.
// A batch is at most BATCH events, so one frame's work stays short however long the
// queue; a hidden page gets no frames, so a timer flushes too.
const BATCH = 8;
const queued = [];
let sink = null;
let flushDue = false;
function flushEvents() {
  if (!flushDue || sink === null) return;
  flushDue = false;
  const batch = queued.splice(0, BATCH);
  if (queued.length) scheduleFlush();
  if (!batch.length) return;
  const t0 = performance.now();
  sink(`[${batch.join(",")}]`); // each item is a JSON text
  // For bench/bench_web.py: the size and the UI's time of the last batches.
  const log = (globalThis.__uiBatches ??= []);
  log.push([batch.length, performance.now() - t0]);
  if (log.length > 1000) log.shift();
}
function scheduleFlush() {
  if (flushDue) return;
  flushDue = true;
  requestAnimationFrame(flushEvents);
  setTimeout(flushEvents, 100);
}
const core = new CoreClient((json) => {
  queued.push(json);
  if (sink !== null) scheduleFlush();
});
core.start(LOCK_WAIT_MS);

// A new deploy is installed by the service worker in the background and used from the
// next load on; offline, it serves this page and every file it needs.
if ("serviceWorker" in navigator) {
  addEventListener("load", () => {
    navigator.serviceWorker.register(new URL("sw.js", ROOT), { scope: ROOT.pathname }).catch((e) => {
      console.warn(`service worker not registered: ${e?.message ?? e}`);
    });
  });
}

// Activity postpones the vault's idle lock (at most one message per 10 s).
let lastTouch = 0;
for (const type of ["keydown", "pointerdown"]) {
  addEventListener(type, () => {
    const now = performance.now();
    if (now - lastTouch > 10_000 && core.phase === "ready") {
      lastTouch = now;
      core.call("touch", "{}");
    }
  }, { capture: true, passive: true });
}

setQrLibrary(qrcode);
installDom();

async function fetchChecked(key) {
  const response = await fetch(new URL(manifest[key], ROOT), { integrity: manifest[`${key}_integrity`] });
  if (!response.ok) throw new Error(`${manifest[key]}: HTTP ${response.status}`);
  return response;
}

/** The page's own storage, after the worker wiped the vault (panic): what a worker
 * cannot reach (localStorage, sessionStorage, service workers) and anything left. */
async function wipePage() {
  const problems = [];
  const attempt = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${e?.message ?? e}`);
    }
  };
  await attempt("localStorage", () => localStorage.clear());
  await attempt("sessionStorage", () => sessionStorage.clear());
  await attempt("Cache Storage", async () => {
    for (const key of await caches.keys()) await caches.delete(key);
  });
  await attempt("service workers", async () => {
    // The worker still controls this page until it closes: tell it to stop caching.
    navigator.serviceWorker?.controller?.postMessage("panic");
    for (const r of (await navigator.serviceWorker?.getRegistrations()) ?? []) await r.unregister();
  });
  await attempt("IndexedDB", async () => {
    for (const info of await indexedDB.databases()) {
      if (info.name) await new Promise((ok) => {
        const req = indexedDB.deleteDatabase(info.name);
        req.onsuccess = req.onerror = req.onblocked = () => ok();
      });
    }
  });
  return problems;
}

// Tests and benchmarks: the core's life (crash it, see its phase).
globalThis.__intellacc = Object.freeze({
  crashCore: () => core.crash(),
  corePhase: () => core.phase,
});

try {
  status("Loading…");
  const [mp, ui] = await Promise.all([
    loadMicroPython({
      url: new URL(`${manifest.micropython}micropython.wasm`, ROOT).href,
      heapsize: 16 * 1024 * 1024,
      stdout: (line) => console.log(line),
      stderr: (line) => console.error(line),
    }),
    fetchChecked("ui").then((r) => r.json()),
  ]);
  performance.mark("ui:runtime");
  mp.FS.mkdir("/app");
  for (const [path, source] of Object.entries(ui)) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      try {
        mp.FS.mkdir(`/app/${parts.slice(0, i).join("/")}`);
      } catch {
        // exists
      }
    }
    mp.FS.writeFile(`/app/${path}`, source);
  }
  mp.registerJsModule("dom_js", dom);
  mp.registerJsModule("passwords_js", passwords(new URL(manifest.passwords, ROOT), manifest.passwords_integrity));
  mp.registerJsModule("core_js", {
    call: (method, params) => core.call(method, params),
    take_over: () => core.takeOver(),
    try_take: () => core.tryTake(),
    listen: (fn) => {
      sink = fn;
      if (queued.length) scheduleFlush();
    },
    wipe_page: async () => JSON.stringify(await wipePage()),
    clear_drafts: clearDrafts,
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") core.tryTake();
  });
  await mp.runPythonAsync("import sys\nsys.path.insert(0, '/app')\nimport chatui.main\nawait chatui.main.run()");
} catch (e) {
  fatal(`Could not start: ${e?.message ?? e}`);
  throw e;
}
