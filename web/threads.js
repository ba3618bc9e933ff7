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

/// The explanation worker: requests go in order; each returns a promise of its answer. The
/// worker owns the model and the photo; a replacement is given the same ones (`replay`).
export class ExplainWorker {
  /// `threaded`: the threaded build (the page must be cross-origin isolated).
  constructor(threaded, cancelGraceMs = CANCEL_GRACE_MS) {
    this.threaded = threaded;
    this.cancelGraceMs = cancelGraceMs;
    this.pending = new Map();
    this.next = 0;
    this.running = null; // the id of the explanation under way
    this.replay = { start: null, model: null, image: null }; // what a replacement worker needs
    this.onRestart = null; // told why, when a worker that died has been replaced
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
      if (data.fatal) this.died(`it trapped: ${data.error}`, p);
      else {
        this.deaths = 0;
        if (data.error !== undefined) p.reject(new Error(data.error));
        else p.resolve(data.value);
      }
    };
    // The worker died (it failed to load, or ran out of memory): replace it, retry its work.
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      this.died(e.message || "it stopped");
    };
  }

  /// A worker that died is replaced, given the model and the photo again, and each request
  /// it lost (`first` and the queued ones) is sent once more; a request that fails a second
  /// time fails for good. A worker that dies again before answering anything is replaced bare.
  died(reason, first = null) {
    const lost = [first, ...this.pending.values()].filter(Boolean);
    this.pending.clear();
    this.running = null;
    this.deaths = (this.deaths || 0) + 1;
    const error = new Error(`the explanation worker stopped (${reason})`);
    if (this.deaths > 1) {
      // It died again on the model and photo it was given back: start bare.
      this.replay.model = null;
      this.replay.image = null;
      this.restart();
      for (const p of lost) p.reject(new Error(`${error.message}; load the model again`));
      return;
    }
    this.restart();
    this.onRestart?.(reason);
    for (const p of lost) {
      if (p.retried || p.replayed || p.fields.type === "start") {
        p.reject(error);
        continue;
      }
      const { type, ...fields } = p.fields;
      this.request(type, fields, p.onProgress, true).then(p.resolve, p.reject);
    }
  }

  failAll(error) {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.running = null;
  }

  request(type, fields = {}, onProgress = null, retried = false, replayed = false) {
    const id = this.next++;
    if (type in this.replay && !replayed) this.replay[type] = fields;
    if (type === "model" && !replayed) this.replay.image = null; // a new model forgets the photo
    if (type === "explain") this.running = id;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress, retried, replayed, fields: { type, ...fields } });
      this.worker.postMessage({ id, type, ...fields });
    });
  }

  /// Loads the build and starts its pool; resolves to `init`'s answer: {backend, threads}.
  start(threads) { return this.request("start", { threads }); }

  loadModel(bytes, labels, dataName, data) { return this.request("model", { bytes, labels, dataName, data }); }

  /// Prepares a photo; resolves to {top5, size, crop, rgba}.
  setImage(bytes) { return this.request("image", { bytes }); }

  explain(methods, steps, targets, layer, batch, onProgress) {
    return this.request("explain", { methods, steps, targets, layer, batch }, onProgress);
  }

  /// How many models the worker has loaded.
  modelsLoaded() { return this.request("loads"); }

  /// The running explanation stops after the chunk it is in. A worker that does not answer
  /// within the grace period is replaced by a new one, given the same model and photo.
  cancel() {
    const id = this.running;
    if (id === null) return;
    this.worker.postMessage({ type: "cancel", id });
    setTimeout(() => { if (this.running === id) { this.failAll(new Error("cancelled")); this.restart(); } }, this.cancelGraceMs);
  }

  /// A new worker in place of this one, given the build, the model and the photo again.
  restart() {
    this.worker.terminate();
    this.spawn();
    const { start, model, image } = this.replay;
    for (const [type, fields] of [["start", start], ["model", model], ["image", image]]) {
      if (fields) this.request(type, fields, null, false, true).catch(() => {});
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
