// The CPU path off the page's thread, on every core where it can: cross-origin isolation (the
// service worker sw.js where the host does not send COOP/COEP itself) and the Web Worker that
// runs the explanations (explain-worker.js) on the threaded wasm build, or, without isolation,
// on the single-threaded one.

const RELOADED = "igcam-isolation-reload";

/// Makes the page cross-origin isolated through sw.js when it is not, by one reload once the
/// service worker controls it. Returns true when that reload is under way. `?nothreads` skips
/// it; a browser without service workers, or one where the reload did not help, goes on
/// without isolation (one thread).
export async function isolate(params) {
  if (self.crossOriginIsolated || params.has("nothreads") || !("serviceWorker" in navigator)) return false;
  try {
    const registration = await navigator.serviceWorker.register("sw.js");
    // Controlled, yet not isolated (or reloaded once already): the reload would not help.
    if (!registration || navigator.serviceWorker.controller || sessionStorage.getItem(RELOADED)) return false;
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 5000));
    const ready = await Promise.race([navigator.serviceWorker.ready, timeout]);
    if (!ready?.active) return false;
    sessionStorage.setItem(RELOADED, "1");
    location.reload();
    return true;
  } catch {
    return false;
  }
}

/// Why the CPU path runs on one thread, or null when threads can start.
export function singleThreadReason(params) {
  if (params.has("nothreads")) return "?nothreads was asked for";
  if (!self.crossOriginIsolated) return "the page is not cross-origin isolated (no COOP/COEP headers, and its service worker could not add them)";
  if ((navigator.hardwareConcurrency || 1) < 2) return "this device reports one core";
  return null;
}

/// How long a cancelled explanation may take to stop before its worker is replaced (`?cancelgrace=MS`
/// sets it): a worker whose thread pool lost a thread (a trap in a pool worker) never answers.
const CANCEL_GRACE_MS = 5000;

/// The explanation worker: requests go in order; each returns a promise of its answer.
export class ExplainWorker {
  /// `threaded`: the threaded build (the page must be cross-origin isolated).
  constructor(threaded, cancelGraceMs = CANCEL_GRACE_MS) {
    this.threaded = threaded;
    this.cancelGraceMs = cancelGraceMs;
    this.pending = new Map();
    this.next = 0;
    this.running = null; // the id of the explanation under way
    this.replay = { start: null, model: null, image: null }; // what a replacement worker needs
    this.spawn();
  }

  spawn() {
    this.worker = new Worker(`explain-worker.js?build=${this.threaded ? "mt" : "st"}`, { type: "module" });
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress) { p.onProgress?.(...data.progress); return; }
      this.pending.delete(data.id);
      if (data.id === this.running) this.running = null;
      if (data.error !== undefined) p.reject(new Error(data.error));
      else p.resolve(data.value);
    };
    this.worker.onerror = (e) => this.failAll(new Error(`the explanation worker failed: ${e.message || "it did not load"}`));
  }

  failAll(error) {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.running = null;
  }

  request(type, fields = {}, onProgress = null) {
    const id = this.next++;
    if (type in this.replay) this.replay[type] = fields;
    if (type === "model") this.replay.image = null; // a new model forgets the photo
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, type, ...fields });
    });
  }

  /// Loads the build and starts its pool; resolves to `init`'s answer: {backend, threads}.
  start(threads) { return this.request("start", { threads }); }

  loadModel(bytes, labels, dataName, data) { return this.request("model", { bytes, labels, dataName, data }); }

  setImage(bytes) { return this.request("image", { bytes }); }

  explain(methods, steps, targets, layer, batch, onProgress) {
    this.running = this.next;
    return this.request("explain", { methods, steps, targets, layer, batch }, onProgress);
  }

  /// The running explanation stops after the chunk it is in. A worker that does not answer
  /// within the grace period is replaced by a new one, given the same model and photo.
  cancel() {
    const id = this.running;
    if (id === null) return;
    this.worker.postMessage({ type: "cancel", id });
    setTimeout(() => { if (this.running === id) this.restart(); }, this.cancelGraceMs);
  }

  restart() {
    this.worker.terminate();
    this.failAll(new Error("cancelled"));
    this.spawn();
    const { start, model, image } = this.replay;
    for (const [type, fields] of [["start", start], ["model", model], ["image", image]]) {
      if (fields) this.request(type, fields).catch(() => {});
    }
  }

  terminate() { this.worker.terminate(); }
}

/// Starts the explanation worker: the threaded build on `threads` threads, or the
/// single-threaded one when `threads` is 1: {worker, backend, threads}. `worker` is null (and
/// `error` says why) when it fails.
export async function startWorker(threads, cancelGraceMs) {
  const worker = new ExplainWorker(threads > 1, cancelGraceMs);
  try {
    return { worker, ...await worker.start(threads) };
  } catch (e) {
    worker.terminate();
    return { worker: null, error: `the ${threads > 1 ? "threaded" : "CPU"} worker did not start (${e.message || e})` };
  }
}
