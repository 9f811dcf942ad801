// Boots Python for a page of the bundle (web/dist, see build.py): Pyodide, the crypto
// glue registered as `mls_crypto_js`, and the project's wheel (mls, corecrypto).
// Everything comes from the page's own origin; the bundle is laid out as
//   pyodide/  the runtime      vendor/  JS libraries (import map)
//   py/       the wheel        js/      this module and the glue
//   build.json  the wheel's name and SRI hash.

import { loadPyodide } from "pyodide";
import { init, register } from "./mls_crypto.mjs";
// The encrypted vault (corecrypto.vault.browser) and Argon2id, as `vault_js`.
import { init as initVault, register as registerVault } from "./vault.mjs";

/** The bundle's root URL: this module lives in js/. */
export const BUNDLE_URL = new URL("../", import.meta.url);

async function fetchOk(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

/** The bundle's manifest (build.json), revalidated: it changes with every rebuild. */
export async function fetchManifest() {
  return (await fetchOk(new URL("build.json", BUNDLE_URL), { cache: "no-cache" })).json();
}

/**
 * An archive the manifest names (`"wheel"` or `"app"`), checked against the hash it
 * gives (Subresource Integrity).
 */
export async function fetchArchive(manifest, key) {
  const response = await fetchOk(new URL(manifest[key], BUNDLE_URL), {
    integrity: manifest[`${key}_integrity`],
  });
  return response.arrayBuffer();
}

async function fetchWheel() {
  return fetchArchive(await fetchManifest(), "wheel");
}

/**
 * Loads Pyodide and the project and returns the Pyodide instance, ready for
 * `import mls` with the JS-backed crypto provider. The downloads and the libraries'
 * WebAssembly compilation run concurrently; the crypto glue is registered before any
 * project code runs, because the provider calls it synchronously.
 * Options: stdout/stderr (line callbacks, as for loadPyodide).
 */
export async function startPython({ stdout, stderr } = {}) {
  const indexURL = new URL("pyodide/", BUNDLE_URL).href;
  const [pyodide, wheel] = await Promise.all([
    // packageBaseUrl: should a Pyodide package ever be requested, it is looked up here
    // (and 404s), never on Pyodide's default CDN.
    loadPyodide({ indexURL, packageBaseUrl: indexURL, stdout, stderr }).then((py) => {
      performance.mark("mls:pyodide-loaded"); // for bench/bench_pyodide.py
      return py;
    }),
    fetchWheel(),
    init(),
    initVault(),
  ]);
  await register(pyodide);
  await registerVault(pyodide);
  pyodide.unpackArchive(wheel, "wheel");
  // Fail here, with a clear traceback, rather than at the first use.
  pyodide.runPython("from mls.crypto import default_provider\ndefault_provider()");
  performance.mark("mls:ready");
  return pyodide;
}
