// The Web Worker that runs the page's CPU explanations, so that the page's own thread stays
// free (the progress bar moves, clicks land) while the path runs. `?build=mt` loads the threaded
// build (igcam-web-mt: its rayon pool of Web Workers blocks the thread that calls it, which a
// page's main thread may not do; needs a cross-origin-isolated page); `?build=st` the
// single-threaded one (any page). Requests are handled one at a time, in order:
//   {id, type: "start", threads}   loads the build and opens the CPU device (on `threads` workers)
//   {id, type: "model", bytes, labels, dataName, data}
//   {id, type: "image", bytes}
//   {id, type: "explain", methods, steps, targets, layer, batch}
// Each answers {id, value} or {id, error}; "explain" also sends {id, progress: [done, total]}.
// {type: "cancel", id} is handled at once: explanation `id` stops after its current chunk.
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
    case "image":
      return wasm.set_image(msg.bytes);
    case "explain":
      return wasm.explain(msg.methods, msg.steps, msg.targets, msg.layer, msg.batch,
        (done, total) => postMessage({ id: msg.id, progress: [done, total] }),
        () => cancelled === msg.id);
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
      postMessage({ id: data.id, value: await handle(data) });
    } catch (e) {
      postMessage({ id: data.id, error: e.message || String(e) });
    }
  });
};
