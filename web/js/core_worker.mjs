// The client core's worker: Pyodide with mls, corecrypto, the vault and the messenger
// (web/app/chatworker). The page's main thread never runs any of it: it sends requests
// and receives events (web/js/core_client.mjs).
//
// One live instance per device: this worker holds the Web Lock LOCK_NAME for as long
// as it may touch the device's state, and loads the core only once it holds it. A
// worker that cannot get it reports "standby"; the user can then ask the owner (over
// the BroadcastChannel TABS_CHANNEL) to hand over. The owner finishes what it is doing,
// stops, and only then releases the lock, so the next owner starts after it: never two
// writers, not even briefly (the lock is never stolen). A worker that dies (crash, tab
// closed, terminate()) releases the lock with it. The lock's and channel's names and
// messages are a protocol between deploys: keep them stable.
//
// Messages, main -> worker: {type: "init", wait} (first: how long to wait for the lock),
//   {type: "call", id, method, params (JSON text)},
//   {type: "take-over"} (the user asked to use this tab), {type: "try"} (take the lock
//   if it is free). Worker -> main: {type: "phase", phase, ...} with phase "waiting",
//   "standby", "owner" ({vault}), "ready", "released", "failed" ({message});
//   {type: "result", id, json}; {type: "event", json}.

import { loadPyodide } from "pyodide";
import manifest from "./manifest.mjs";
import { init as initCrypto, register as registerCrypto } from "./mls_crypto.mjs";
import { hasVault, init as initVault, register as registerVault, vaultStats } from "./vault.mjs";

export const LOCK_NAME = "intellacc-device";
export const TABS_CHANNEL = "intellacc-tabs";
// A reload's new page can start before the old page's worker is gone: wait this long
// for the lock before showing the hand-over screen.
const FIRST_WAIT_MS = 2500;

const ROOT = new URL("../", import.meta.url);
globalThis.__vaultStats = vaultStats; // for bench/bench_web.py
const post = (message) => self.postMessage(message);
const phase = (name, extra = {}) => post({ type: "phase", phase: name, ...extra });

let state = "starting"; // starting | standby | requesting | owner | releasing | released
let releaseLock = null;
let bridge = null;
let ready = null; // promise of the bridge, once owner
const tabs = new BroadcastChannel(TABS_CHANNEL);

/** Requests the lock; resolves to true once held (until releaseLock() is called), or
 * false if `options` made the request give up (ifAvailable, signal). */
function acquire(options) {
  return new Promise((resolve) => {
    navigator.locks
      .request(LOCK_NAME, options, (lock) => {
        if (lock === null) {
          resolve(false);
          return undefined;
        }
        resolve(true);
        return new Promise((release) => {
          releaseLock = release;
        });
      })
      .catch((e) => {
        if (e?.name === "AbortError") resolve(false);
        else {
          phase("failed", { message: `Web Locks: ${e?.message ?? e}` });
          resolve(false);
        }
      });
  });
}

async function fetchChecked(key) {
  const response = await fetch(new URL(manifest[key], ROOT), { integrity: manifest[`${key}_integrity`] });
  if (!response.ok) throw new Error(`${manifest[key]}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/** The memory snapshot build.py made (Python started, the client imported), inflated. */
async function fetchSnapshot() {
  const response = await fetch(new URL(manifest.snapshot, ROOT), { integrity: manifest.snapshot_integrity });
  if (!response.ok) throw new Error(`${manifest.snapshot}: HTTP ${response.status}`);
  return new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
}

async function startPyodide(snapshot) {
  const indexURL = new URL(manifest.pyodide, ROOT).href;
  return loadPyodide({
    indexURL,
    packageBaseUrl: indexURL, // never Pyodide's CDN, should a package be asked for
    lockFileContents: manifest.pyodide_lock,
    _loadSnapshot: snapshot,
    stdout: (line) => console.log(line),
    stderr: (line) => console.warn(line),
  });
}

async function loadCore() {
  // Restoring the snapshot skips starting Python and importing the client (seconds);
  // should it fail, Python starts the ordinary way.
  const started = fetchSnapshot().then(startPyodide).catch((e) => {
    console.warn(`the Pyodide snapshot did not load (${e?.message ?? e}); starting Python`);
    return startPyodide(undefined);
  });
  const [pyodide, wheel, app] = await Promise.all([
    started, fetchChecked("wheel"), fetchChecked("worker"), initCrypto(), initVault(),
  ]);
  performance.mark("core:pyodide");
  await registerCrypto(pyodide);
  await registerVault(pyodide);
  // The files too: what the snapshot did not import is imported from them.
  pyodide.unpackArchive(wheel, "wheel");
  pyodide.unpackArchive(app, "zip");
  const module = pyodide.pyimport("chatworker.browser");
  const made = module.start((text) => post({ type: "event", json: text }));
  module.destroy();
  performance.mark("core:ready");
  return made;
}

async function becomeOwner() {
  state = "owner";
  phase("owner", { vault: await hasVault() });
  ready = loadCore();
  try {
    bridge = await ready;
  } catch (e) {
    phase("failed", { message: `The secure core did not start: ${e?.message ?? e}` });
    return;
  }
  if (state === "owner") phase("ready");
}

async function release() {
  if (state !== "owner") return;
  state = "releasing";
  phase("releasing");
  try {
    if (ready !== null) await (await ready).shutdown();
  } catch {
    // a core that failed to load has nothing to finish
  } finally {
    state = "released";
    releaseLock?.();
    releaseLock = null;
    phase("released");
  }
}

async function takeOver() {
  if (state !== "standby") return;
  state = "requesting";
  tabs.postMessage({ type: "handover" });
  if (await acquire({})) await becomeOwner();
}

async function tryTake() {
  if (state !== "standby") return;
  state = "requesting";
  if (await acquire({ ifAvailable: true })) await becomeOwner();
  else state = "standby";
}

tabs.onmessage = (event) => {
  if (event.data?.type === "handover" && state === "owner") release();
};

self.onmessage = async (event) => {
  const msg = event.data;
  if (msg?.type === "init" && state === "starting") start(msg.wait ?? FIRST_WAIT_MS);
  else if (msg?.type === "take-over") takeOver();
  else if (msg?.type === "try") tryTake();
  else if (msg?.type === "call") {
    let json;
    if (state !== "owner" || ready === null) {
      json = JSON.stringify({ error: { kind: "released", message: "This chat is open in another tab." } });
    } else {
      try {
        const b = await ready;
        json = await b.handle(msg.method, msg.params);
      } catch (e) {
        json = JSON.stringify({ error: { kind: "internal", message: String(e?.message ?? e) } });
      }
    }
    post({ type: "result", id: msg.id, json });
  }
};

/** Start: take the lock if it is free or becomes free within `waitMs` (a reload: the
 * old page's worker may still be going), else stand by. */
async function start(waitMs) {
  phase("waiting");
  const options = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
  if (await acquire(options)) {
    await becomeOwner();
  } else if (state === "starting") {
    state = "standby";
    phase("standby");
  }
}
