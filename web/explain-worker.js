// The Web Worker that runs explanations on the threaded wasm build (igcam-web-mt): its rayon
// pool blocks the thread that calls it, which a page's main thread may not do, and the page
// stays responsive while it works. Messages are handled one at a time, in order:
//   {id, type: "start", threads, cancel}   opens the CPU device on `threads` Web Workers;
//                                           `cancel` is a SharedArrayBuffer flag the page sets
//   {id, type: "model", bytes, labels, dataName, data}
//   {id, type: "image", bytes}
//   {id, type: "explain", methods, steps, targets, layer, batch}
// Each answers {id, value} or {id, error}; "explain" also sends {id, progress: [done, total]}.
import init, * as mt from "./igcam-web-mt.js";

let cancel = null;
let queue = Promise.resolve();

async function handle(msg) {
  switch (msg.type) {
    case "start":
      await init();
      await mt.initThreadPool(msg.threads);
      cancel = new Int32Array(msg.cancel);
      return mt.init("cpu");
    case "model":
      return mt.load_model(msg.bytes, msg.labels, msg.dataName, msg.data);
    case "image":
      return mt.set_image(msg.bytes);
    case "explain":
      return mt.explain(msg.methods, msg.steps, msg.targets, msg.layer, msg.batch,
        (done, total) => postMessage({ id: msg.id, progress: [done, total] }),
        () => Atomics.load(cancel, 0) !== 0);
    default:
      throw new Error(`unknown request ${msg.type}`);
  }
}

self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      postMessage({ id: data.id, value: await handle(data) });
    } catch (e) {
      postMessage({ id: data.id, error: e.message || String(e) });
    }
  });
};
