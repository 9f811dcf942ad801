// The bare-Pyodide floor of bench/bench_web.py: load the app's Pyodide from the same
// server, as the app's worker does, and run 1 + 1. Nothing else.

import { loadPyodide } from "pyodide";
import manifest from "./manifest.mjs";

const indexURL = new URL(manifest.pyodide, new URL("../", import.meta.url)).href;
const pyodide = await loadPyodide({ indexURL, packageBaseUrl: indexURL,
  lockFileContents: manifest.pyodide_lock });
const two = pyodide.runPython("1 + 1");
performance.mark("floor:ready");
document.getElementById("status").textContent = `1 + 1 = ${two}`;
document.body.dataset.state = two === 2 ? "ready" : "error";
