// Makes the client core's Pyodide memory snapshot for the browser bundle (build.py):
// Pyodide started, the wheel (mls, corecrypto) and the worker's Python unpacked and
// imported, then the whole WebAssembly memory written out. The worker restores it
// instead of starting Python and importing (about 1 s instead of 5-10 s here).
//
//   node scripts/make_snapshot.mjs PYODIDE_DIR WHEEL WORKER_ZIP IMPORTS OUT
//
// Only public code is in it: no key, no vault, nothing of any user. Python's `random`
// is reseeded by the worker after a restore (chatworker.browser).

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const [pyodideDir, wheelPath, workerPath, imports, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: make_snapshot.mjs PYODIDE_DIR WHEEL WORKER_ZIP IMPORTS OUT");
  process.exit(2);
}
const { loadPyodide } = await import(join(pyodideDir, "pyodide.mjs"));
const lock = JSON.parse(readFileSync(join(pyodideDir, "pyodide-lock.json"), "utf8"));
const pyodide = await loadPyodide({
  indexURL: `${pyodideDir}/`,
  lockFileContents: { info: lock.info, packages: {} },
  _makeSnapshot: true,
  stdout: () => {},
  stderr: (line) => console.error(line),
});
pyodide.unpackArchive(new Uint8Array(readFileSync(wheelPath)), "wheel");
pyodide.unpackArchive(new Uint8Array(readFileSync(workerPath)), "zip");
pyodide.runPython(imports);
const snapshot = pyodide.makeMemorySnapshot();
// gzip: 31 MB of memory is ~7 MB on the wire and in the cache; the worker inflates it
// with DecompressionStream.
const tmp = `${out}.${process.pid}.tmp`;
writeFileSync(tmp, gzipSync(snapshot, { level: 6 }));
renameSync(tmp, out);
