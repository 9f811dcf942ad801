// The main thread's side of the client core (web/js/core_worker.mjs): starts the
// worker, sends requests, forwards events, and keeps going when the worker stops.
//
// Everything reaches the UI as JSON texts through `onEvent`: the core's own events,
// and {"event": "core", "data": {"phase": ...}} for the worker's life: "waiting",
// "standby" (another tab has the device), "owner" ({vault}), "ready", "releasing",
// "released" (handed over to another tab), "failed" ({message}), "stopped" (the
// worker died; a new one is starting).

const WORKER_URL = new URL("./core_worker.mjs", import.meta.url);

export class CoreClient {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.worker = null;
    this.pending = new Map();
    this.nextId = 1;
    this.phase = "starting";
  }

  emit(event, data) {
    this.onEvent(JSON.stringify({ event, data }));
  }

  /** A new worker; `wait`: ms to wait for the device lock before standing by. */
  start(wait) {
    const worker = new Worker(WORKER_URL, { type: "module", name: "intellacc-core" });
    this.worker = worker;
    worker.onmessage = (event) => this.receive(worker, event.data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      this.stopped(worker, `the secure core failed: ${event.message ?? "unknown error"}`);
    };
    worker.onmessageerror = () => this.stopped(worker, "the secure core sent a broken message");
    worker.postMessage({ type: "init", wait });
  }

  receive(worker, msg) {
    if (worker !== this.worker) return;
    if (msg.type === "result") {
      const resolve = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      resolve?.(msg.json);
    } else if (msg.type === "event") {
      if (msg.json.startsWith('{"event": "log"')) {
        // Diagnostics: the console, and the last lines in window.__log for tests.
        const line = JSON.parse(msg.json).data.line;
        console.log(line);
        const buf = (globalThis.__log ??= []);
        buf.push(line);
        if (buf.length > 200) buf.shift();
      } else {
        this.onEvent(msg.json);
      }
    } else if (msg.type === "phase") {
      this.phase = msg.phase;
      performance.mark(`core:${msg.phase}`); // for bench/bench_web.py
      const { type, ...data } = msg;
      this.emit("core", data);
      if (msg.phase === "released") {
        // Handed over: this worker is done. A fresh one waits in standby.
        this.fail("released", "This chat is now open in another tab.");
        worker.terminate();
        this.start(0);
      }
    }
  }

  fail(kind, message) {
    const json = JSON.stringify({ error: { kind, message } });
    for (const resolve of this.pending.values()) resolve(json);
    this.pending.clear();
  }

  /** The worker died (crash, out of memory, a bug): answer what was pending, start
   * another. The lock went with the dead worker, so the new one becomes the owner. */
  stopped(worker, message) {
    if (worker !== this.worker) return;
    worker.terminate();
    this.worker = null;
    this.fail("stopped", "The secure core stopped; it is restarting.");
    this.phase = "stopped";
    this.emit("core", { phase: "stopped", message });
    this.start(5000);
  }

  /** Sends a request; resolves to the JSON text of {ok} or {error} (never rejects). */
  call(method, params) {
    if (this.worker === null) {
      return Promise.resolve(JSON.stringify({ error: { kind: "stopped", message: "The secure core is restarting." } }));
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ type: "call", id, method, params: params ?? "{}" });
    });
  }

  takeOver() {
    this.worker?.postMessage({ type: "take-over" });
  }

  tryTake() {
    this.worker?.postMessage({ type: "try" });
  }

  /** Tests: kill the worker as a crash would. */
  crash() {
    if (this.worker !== null) this.stopped(this.worker, "killed (test)");
  }
}
