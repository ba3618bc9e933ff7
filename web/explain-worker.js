// The Web Worker that runs the page's CPU explanations and owns the model and the photo there,
// so that the page's own thread stays free (the progress bar moves, clicks land) while a model
// loads, a photo is prepared or the path runs. `?build=mt` loads the threaded build
// (igcam-web-mt: its rayon pool of Web Workers blocks the thread that calls it, which a page's
// main thread may not do; needs a cross-origin-isolated page); `?build=st` the single-threaded
// one (any page). Requests are handled one at a time, in order:
//   {id, type: "start", threads}   loads the build and opens the CPU device (on `threads` workers)
//   {id, type: "model", bytes, labels, dataName, data}   answers the model's classes and layers
//   {id, type: "image", bytes}     answers {top5, size, crop, rgba}: the photo's pixels to draw
//   {id, type: "explain", methods, steps, targets, layer, batch}
//   {id, type: "loads"}            how many models this worker has loaded
// Each answers {id, value} or {id, error}; "explain" also sends {id, progress: [done, total]}.
// A trap in the wasm (an abort) leaves the module unusable: that answer carries `fatal`, and the
// page replaces the worker. {type: "cancel", id} is handled at once: explanation `id` stops
// after its current chunk.
const threaded = new URL(self.location.href).searchParams.get("build") === "mt";
let wasm = null;
let cancelled = null;
let queue = Promise.resolve();

async function handle(msg) {
  switch (msg.type) {
    case "start":
      wasm = await import(threaded ? "./igcam-web-mt.js" : "./igcam-web.js");
      await wasm.default();
      if (threaded) await wasm.initThreadPool(msg.threads);
      return wasm.init("cpu");
    case "model":
      return wasm.load_model(msg.bytes, msg.labels, msg.dataName, msg.data);
    case "image": {
      const info = await wasm.set_image(msg.bytes);
      return { ...info, rgba: wasm.photo_rgba() };
    }
    case "explain":
      return wasm.explain(msg.methods, msg.steps, msg.targets, msg.layer, msg.batch,
        (done, total) => postMessage({ id: msg.id, progress: [done, total] }),
        () => cancelled === msg.id);
    case "loads":
      return wasm ? wasm.models_loaded() : 0;
    default:
      throw new Error(`unknown request ${msg.type}`);
  }
}

self.onmessage = ({ data }) => {
  if (data.type === "cancel") {
    cancelled = data.id;
    return;
  }
  queue = queue.then(async () => {
    try {
      const value = await handle(data);
      // The photo's pixels move to the page instead of being copied.
      const transfer = value?.rgba ? [value.rgba.buffer] : [];
      postMessage({ id: data.id, value }, transfer);
    } catch (e) {
      postMessage({ id: data.id, error: e.message || String(e), fatal: e instanceof WebAssembly.RuntimeError });
    }
  });
};
