// Boots the web chat: PyScript runs web/app/main.py on our own Pyodide. Before any
// Python runs, this module registers the JS the client core calls synchronously
// (the MLS crypto primitives, the vault's storage and WebCrypto glue) and unpacks
// the project's wheel and the app's sources, all from this origin.

import { hooks } from "@pyscript/core";
import qrcode from "qrcode-generator";
import { register as registerCrypto, init as initCrypto } from "./mls_crypto.mjs";
import { fetchArchive, fetchManifest } from "./mls_runtime.mjs";
import { register as registerVault, init as initVault } from "./vault.mjs";

const status = (text) => {
  const el = document.getElementById("loading-text");
  if (el) el.textContent = text;
};

/** The safety-number QR code as an SVG string, drawn locally. */
globalThis.intellaccQrSvg = (text) => {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  return qr.createSvgTag({ cellSize: 4, margin: 2, scalable: true });
};

// Start the downloads and the WebAssembly compilation while PyScript loads Pyodide.
const archives = fetchManifest().then(async (manifest) => ({
  wheel: await fetchArchive(manifest, "wheel"),
  app: await fetchArchive(manifest, "app"),
}));
const cryptoReady = initCrypto();
const vaultReady = initVault();

// The app runs no PyScript worker. PyScript compiles its worker hooks with Function(),
// which the page's Content-Security-Policy (no 'unsafe-eval') forbids: drop them.
for (const name of ["onReady", "onBeforeRun", "onBeforeRunAsync", "onAfterRun", "onAfterRunAsync"]) {
  hooks.worker[name].clear();
}

status("Loading Python…");
hooks.main.onReady.add(async (wrap) => {
  const pyodide = wrap.interpreter;
  status("Loading the cryptography…");
  await cryptoReady;
  await registerCrypto(pyodide);
  await vaultReady;
  await registerVault(pyodide);
  const { wheel, app } = await archives;
  pyodide.unpackArchive(wheel, "wheel");
  pyodide.unpackArchive(app, "zip");
  status("Starting…");
});

window.addEventListener("error", (ev) => {
  if (document.body.dataset.state === "loading") {
    document.body.dataset.state = "error";
    status(`Could not start: ${ev.message}`);
  }
});
