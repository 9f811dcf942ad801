// The test page's script: boots Python (mls_runtime.mjs), then round-trips the MLS
// labelled signature and encryption in every cipher suite through the JS-backed
// provider, and shows the result. Tests and benchmarks use the globals:
//   globalThis.mlsPython   promise of the ready Pyodide instance
//   globalThis.mlsReadyAt  performance.now() when it became ready (ms since navigation)
//   globalThis.intellaccModules  the glue modules ({vault}), for tests to call directly
//   <html data-state>      "ready" after the self-check passed, "error" otherwise

import { startPython } from "./mls_runtime.mjs";
import * as vault from "./vault.mjs";

const SELF_CHECK = `
from mls.crypto import SUITES, CipherSuite, default_provider

provider = default_provider()
lines = [f"provider: {provider.name}"]
for suite_id in SUITES:
    cs = CipherSuite(suite_id, provider)
    sk, pk = cs.generate_signature_key_pair()
    sig = cs.sign_with_label(sk, b"check", b"content")
    assert cs.verify_with_label(pk, b"check", b"content", sig)
    assert not cs.verify_with_label(pk, b"check", b"other", sig)
    hsk, hpk = cs.generate_hpke_key_pair()
    kem_output, ct = cs.encrypt_with_label(hpk, b"check", b"ctx", b"hello")
    assert cs.decrypt_with_label(hsk, b"check", b"ctx", kem_output, ct) == b"hello"
    lines.append(f"suite {suite_id}: ok")
"\\n".join(lines)
`;

globalThis.intellaccModules = Object.freeze({ vault });
const status = document.getElementById("status");
globalThis.mlsPython = startPython();
try {
  const pyodide = await globalThis.mlsPython;
  globalThis.mlsReadyAt = performance.now();
  status.textContent = `ready in ${Math.round(globalThis.mlsReadyAt)} ms\n${pyodide.runPython(SELF_CHECK)}`;
  document.documentElement.dataset.state = "ready";
} catch (e) {
  status.textContent = `failed: ${e}`;
  document.documentElement.dataset.state = "error";
  throw e;
}
