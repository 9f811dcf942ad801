#!/usr/bin/env node
// Runs Python code inside Pyodide under Node.js, with the project's packages importable
// and the crypto glue (web/js/mls_crypto.mjs) registered as `mls_crypto_js`, so that
// mls.crypto.default_provider() is the PyodideProvider. Used by
// `python -m mls.vectors --runtime pyodide` (src/mls/vectors/pyodide_runtime.py) and
// the browser tests.
//
// Input: one JSON object on stdin:
//   packages: host directories of Python packages, copied into the Pyodide file system
//             (only *.py files and py.typed) and importable under their directory name;
//   files:    host files copied to the same absolute paths inside Pyodide (inputs such
//             as test vectors; unreadable ones are left out, so Python reports them);
//   cwd:      working directory inside Pyodide (created), so relative paths resolve
//             as on the host;
//   code:     Python source; the value of its last expression, an int, is the exit
//             status.
// Python's stdout and stderr are forwarded byte for byte. Exit status 2 means the
// harness itself could not start (for instance node_modules is missing).

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SITE = "/mls_packages"; // inside Pyodide; prepended to sys.path

function fatal(message) {
  process.stderr.write(`pyodide_run: ${message}\n`);
  process.exit(2);
}

async function readJob() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (e) {
    return fatal(`stdin is not a JSON job: ${e.message}`);
  }
}

function copyPackage(FS, hostDir, pyDir) {
  FS.mkdirTree(pyDir);
  for (const entry of readdirSync(hostDir, { withFileTypes: true })) {
    const host = join(hostDir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") copyPackage(FS, host, `${pyDir}/${entry.name}`);
    } else if (entry.name.endsWith(".py") || entry.name === "py.typed") {
      FS.writeFile(`${pyDir}/${entry.name}`, readFileSync(host));
    }
  }
}

function copyFile(FS, hostPath) {
  let data;
  try {
    data = readFileSync(hostPath);
  } catch {
    return; // Python's open() then fails and the runner reports the file as unreadable
  }
  FS.mkdirTree(dirname(hostPath));
  FS.writeFile(hostPath, data);
}

function forward(stream) {
  return { write: (buf) => (stream.write(buf), buf.length) };
}

async function main() {
  const pyodideEntry = join(ROOT, "node_modules", "pyodide", "pyodide.mjs");
  if (!existsSync(pyodideEntry)) {
    fatal(`${pyodideEntry} is missing: run ./scripts/bootstrap.sh (it runs npm ci)`);
  }
  const job = await readJob();
  let loadPyodide, init, register;
  try {
    ({ loadPyodide } = await import(pyodideEntry));
    ({ init, register } = await import(join(ROOT, "web", "js", "mls_crypto.mjs")));
  } catch (e) {
    fatal(`cannot load the JS dependencies (${e.message}): run ./scripts/bootstrap.sh`);
  }

  // Start libsodium's WebAssembly while Pyodide loads; both must be ready before any
  // Python runs, because the provider calls into JS synchronously.
  // packageBaseUrl: were a Pyodide package ever requested, Pyodide would look for it in
  // node_modules and fail, instead of downloading it from its default CDN.
  const packageBaseUrl = `${dirname(pyodideEntry)}/`;
  const [pyodide] = await Promise.all([loadPyodide({ packageBaseUrl }), init()]);
  await register(pyodide);
  pyodide.setStdout(forward(process.stdout));
  pyodide.setStderr(forward(process.stderr));

  const FS = pyodide.FS;
  for (const dir of job.packages ?? []) {
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) fatal(`no package directory ${dir}`);
    copyPackage(FS, dir, `${SITE}/${dir.replace(/\/+$/, "").split("/").pop()}`);
  }
  for (const file of job.files ?? []) copyFile(FS, resolve(file));
  if (job.cwd) FS.mkdirTree(job.cwd);

  // The job runs like `python -c`: SystemExit and uncaught exceptions become the exit
  // status (the traceback goes to stderr); so does the value of a final int expression.
  const runner = pyodide.runPython(`
import os, sys, traceback
from pyodide.code import eval_code
sys.path.insert(0, ${JSON.stringify(SITE)})
sys.dont_write_bytecode = True

def _run(code, cwd):
    os.chdir(cwd)
    try:
        status = eval_code(code, {"__name__": "__main__"}, filename="<pyodide_run>")
    except SystemExit as e:
        status = e.code
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if status is None or isinstance(status, int):
        return status or 0
    print(status, file=sys.stderr)
    return 1

_run
`);
  process.exitCode = runner(job.code ?? "", job.cwd ?? "/home/pyodide");
  runner.destroy();
}

await main();
