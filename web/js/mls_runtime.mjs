// Boots Python on a page of the bundle (web/dist, see build.py): Pyodide, the crypto
// glue registered as `mls_crypto_js`, the vault glue as `vault_js`, and the project's
// wheel (mls, corecrypto). For the self-check page, the tests and the benchmarks; the
// chat itself runs the same in its worker (core_worker.mjs). Everything comes from the
// page's own origin, at the hashed paths the build's manifest names.

import { loadPyodide } from "pyodide";
import manifest from "./manifest.mjs";
import { init, register } from "./mls_crypto.mjs";
import { init as initVault, register as registerVault } from "./vault.mjs";

/** The bundle's root URL: this module lives in assets/. */
export const BUNDLE_URL = new URL("../", import.meta.url);

/** An archive the manifest names ("wheel" or "worker"), checked against its hash. */
export async function fetchArchive(key) {
  const url = new URL(manifest[key], BUNDLE_URL);
  const response = await fetch(url, { integrity: manifest[`${key}_integrity`] });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/**
 * Loads Pyodide and the project and returns the Pyodide instance, ready for
 * `import mls` with the JS-backed crypto provider. The downloads and the libraries'
 * WebAssembly compilation run concurrently; the crypto glue is registered before any
 * project code runs, because the provider calls it synchronously.
 * Options: stdout/stderr (line callbacks, as for loadPyodide).
 */
export async function startPython({ stdout, stderr } = {}) {
  const indexURL = new URL(manifest.pyodide, BUNDLE_URL).href;
  const [pyodide, wheel] = await Promise.all([
    // packageBaseUrl: should a Pyodide package ever be requested, it is looked up here
    // (and 404s), never on Pyodide's default CDN.
    loadPyodide({ indexURL, packageBaseUrl: indexURL, lockFileContents: manifest.pyodide_lock,
      stdout, stderr }).then((py) => {
      performance.mark("mls:pyodide-loaded"); // for bench/bench_pyodide.py
      return py;
    }),
    fetchArchive("wheel"),
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
