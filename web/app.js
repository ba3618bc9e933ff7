// igcam page logic: DOM, canvases, file input and scheduling. All maths runs in the wasm core,
// the wasm-bindgen module scripts/web-build.sh puts beside this file. On the CPU path the
// explanation worker (threads.js) owns the model and the photo: it loads the one, prepares the
// other, runs the explanations (on the threaded build where the page is cross-origin isolated,
// else on the single-threaded one) and hands back the top-5, the crop, the photo's pixels and
// the maps; this thread only draws. On WebGPU the page computes itself.
import init, * as bindings from "./igcam-web.js";
import { isolate, singleThreadReason, startWorker } from "./threads.js";

const $ = (id) => document.getElementById(id);
const SAMPLES = ["chelsea.png", "coffee.png", "rocket.jpg", "grace_hopper.jpg", "astronaut.png"];
const PARAMS = new URLSearchParams(location.search);
// `?test`: the end-to-end test's hooks on `window` (nothing of it in a normal visit).
const TEST = PARAMS.has("test");
const testHook = (name, value) => { if (TEST) window[name] = value; };
let METHODS = [];     // the library's method table: [{name, display, per_class, cost, slow, compare}]
let wasm = null;
let pool = null;      // the explanation worker (the CPU path), when it runs
let busy = false;
let cancelRequested = false;
let modelInfo = null; // the loaded model's classes, input size and layers // set by the Cancel button; the run stops after its current chunk
let haveImage = false;
let photoVersion = 0; // bumped by each new photo or model: a run's maps of an older one are dropped
let results = [];     // last explanations shown, for re-rendering on opacity/colour changes
let target = -1;      // -1: top-1
// What can be explained on this photo, the first by default: a classifier's top-5 classes, a
// segmenter's classes present, a detector's detections; [{target, label, score, bbox}].
let choices = [];
let regions = null;   // a segmenter's best class at each pixel of its output plane
let photoSize = [0, 0]; // the photo's [width, height] as uploaded
let crop = null;      // the region of the photo the model sees, {x0, y0, x1, y1}
// Maps of the current photo, by "layer|steps|target|method": one request explains the whole
// top-5, so clicking another class shows its maps without a new run.
const cache = new Map();

function showError(msg) {
  const e = $("error");
  e.textContent = msg ? `Error: ${msg}` : "";
  e.hidden = !msg;
}

function status(msg) { $("status").textContent = msg; }

function drawRgba(canvas, rgba, w, h) {
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), w, h), 0, 0);
}

function drawColorbar() {
  const c = $("colorbar");
  const w = c.width, h = c.height;
  const row = wasm.colorbar_rgba($("colormap").value, w);
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) rgba.set(row, y * w * 4);
  c.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
}

function renderResults() {
  const box = $("canvases");
  box.querySelectorAll("figure.result").forEach((f) => f.remove());
  for (const r of results) {
    const fig = document.createElement("figure");
    fig.className = "result";
    fig.dataset.method = r.method;
    const canvas = document.createElement("canvas");
    drawRgba(canvas, wasm.overlay_rgba(Float32Array.from(r.values), r.height, r.width, crop, $("colormap").value, $("alpha").value / 100, marksOf(r.target)), photoSize[0], photoSize[1]);
    canvas.onclick = (ev) => pickBox(canvas, ev);
    const cap = document.createElement("figcaption");
    cap.textContent = `${displayName(r.method)}: ${r.label} — ${r.ms.toFixed(0)} ms`;
    const link = document.createElement("a");
    link.textContent = " Download PNG";
    link.href = "#";
    link.onclick = (ev) => { ev.preventDefault(); const a = document.createElement("a"); a.download = `igcam_${r.method}.png`; a.href = canvas.toDataURL("image/png"); a.click(); };
    cap.appendChild(link);
    fig.append(canvas, cap);
    box.appendChild(fig);
  }
  drawColorbar();
}

function task() { return modelInfo ? modelInfo.task : "classify"; }

/// What is drawn over target `t`'s overlay: a detector's boxes (`t`'s in green), a segmenter's
/// region of class `t` outlined.
function marksOf(t) {
  if (task() === "detect") {
    const chosen = choices.findIndex((c) => c.target === t);
    return { boxes: choices.map((c) => c.bbox), chosen: chosen >= 0 ? chosen : undefined };
  }
  if (task() === "segment" && regions) {
    return { region: { height: regions.height, width: regions.width, values: regions.classes.map((c) => (c === t ? 1 : 0)) } };
  }
  return undefined;
}

/// A click on the photo or an overlay of a detector's photo: the smallest box under it is
/// explained (its maps shown, from the last run where it has them).
function pickBox(canvas, ev) {
  if (task() !== "detect") return;
  const r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  const hits = choices.filter((c) => x >= c.bbox[0] && x <= c.bbox[2] && y >= c.bbox[1] && y <= c.bbox[3]);
  if (!hits.length) return;
  hits.sort((a, b) => area(a.bbox) - area(b.bbox));
  target = hits[0].target;
  showOrRun();
}

/// The detections' boxes on the photo, drawn before any map (the explained one in green).
function drawBoxes(canvas) {
  if (task() !== "detect") return;
  const ctx = canvas.getContext("2d");
  const width = Math.max(1, Math.round(Math.max(photoSize[0], photoSize[1]) / 400));
  choices.forEach((c, i) => {
    const [x0, y0, x1, y1] = c.bbox;
    ctx.lineWidth = i === 0 ? 2 * width : width;
    ctx.strokeStyle = i === 0 ? "#00ff00" : "#ffffff";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  });
}

/// The list of what can be explained: classes with their probability, a segmenter's classes
/// with their share of the pixels, a detector's detections with their confidence.
function fillChoices() {
  $("choices-title").textContent = { classify: "Top-5 (click to explain that class)",
    segment: "Classes present (click to explain that region)",
    detect: "Detections (click one, or its box, to explain it)" }[task()];
  const list = $("top5");
  list.innerHTML = "";
  for (const c of choices) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.className = "class";
    b.textContent = task() === "detect" ? `#${c.target} ${c.label} (${c.score.toFixed(2)})`
      : task() === "segment" ? `${c.label} (${(100 * c.score).toFixed(1)} % of the pixels)`
        : `${c.label} (${(100 * c.score).toFixed(1)} %)`;
    b.onclick = () => { target = c.target; showOrRun(); };
    li.appendChild(b);
    list.appendChild(li);
  }
}

function displayName(name) { return METHODS.find((m) => m.name === name)?.display || name; }

/// The method list, from the library's table (each with its cost where it has one worth
/// saying), and "compare all" (the table's fast, class-specific methods: their pass serves the
/// whole top-5).
function fillMethods() {
  const sel = $("method");
  sel.innerHTML = "";
  for (const m of METHODS) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.cost ? `${m.display} (${m.cost})` : m.display;
    sel.appendChild(o);
  }
  const all = document.createElement("option");
  all.value = "compare";
  all.textContent = "Compare all";
  sel.appendChild(all);
  sel.value = METHODS[0].name;
}

/// A new photo (its bytes, or a promise of them): prepared where the explanations run (the
/// worker on the CPU path, this page on WebGPU), drawn here; no run starts until it is ready.
async function setImage(photoBytes) {
  showError("");
  const hadImage = haveImage;
  haveImage = false;
  $("run").disabled = true;
  try {
    const bytes = await photoBytes;
    let info, rgba;
    if (pool) {
      ({ rgba, ...info } = await pool.setImage(bytes));
      wasm.set_source_rgba(rgba, info.size[0], info.size[1]);
    } else {
      info = await wasm.set_image(bytes);
      rgba = wasm.photo_rgba();
    }
    photoVersion++;
    choices = info.choices;
    regions = info.regions || null;
    photoSize = info.size;
    crop = info.crop;
    testHook("igcamPhoto", info);
    cache.clear();
    // The whole photo at its own size; the map will cover the crop the model sees.
    drawRgba($("photo"), rgba, photoSize[0], photoSize[1]);
    drawBoxes($("photo"));
    fillChoices();
    // A detector may find nothing above its confidence threshold: nothing to explain then.
    haveImage = choices.length > 0;
    target = -1;
    results = [];
    renderResults();
    $("run").disabled = busy || !haveImage;
    if (!choices.length) status("nothing was detected above the confidence threshold: try another photo");
    else if (task() === "detect") status(`${choices.length} detections: click a box or pick one in the list`);
    else if (task() === "segment") status(`${choices.length} classes present: pick one in the list`);
  } catch (e) {
    // A photo that does not decode leaves the previous one in place.
    haveImage = hadImage;
    $("run").disabled = busy || !haveImage;
    showError(e.message || String(e));
  }
}

/// A new model, loaded where the explanations run: in the worker on the CPU path, in this
/// page on WebGPU; never both.
async function setModel(bytes, labels, dataName, data) {
  const info = pool ? await pool.loadModel(bytes, labels, dataName, data) : wasm.load_model(bytes, labels, dataName, data);
  photoVersion++;
  modelInfo = info;
  testHook("igcamModel", info);
  const sel = $("layer");
  sel.innerHTML = "";
  // A detector's default: its neck outputs together, their maps averaged ("" asks for it).
  if (info.default_layers.length > 1) {
    const o = document.createElement("option");
    o.value = "";
    o.textContent = `default: ${info.default_layers.length} layers, maps averaged`;
    o.selected = true;
    sel.appendChild(o);
  }
  for (const l of info.layers) {
    const o = document.createElement("option");
    o.value = l.name;
    o.textContent = `${l.name} [${l.shape.join("×")}]`;
    o.selected = !info.default_layers.length && l.name === info.default_layer;
    sel.appendChild(o);
  }
  haveImage = false;
  cache.clear();
  $("run").disabled = true;
  return info;
}

function selectedMethods() {
  const method = $("method").value;
  return method === "compare" ? METHODS.filter((m) => m.compare).map((m) => m.name) : [method];
}

function cacheKey(t, m) { return `${$("layer").value}|${$("steps").value}|${t}|${m}`; }

function currentTarget() { return target >= 0 ? target : choices[0].target; }

/// Shows the maps of the current class from the cache; false when one is missing.
function showCached() {
  const t = currentTarget();
  const shown = selectedMethods().map((m) => cache.get(cacheKey(t, m)));
  if (shown.some((r) => !r)) return false;
  results = shown;
  renderResults();
  testHook("igcamResult", results[0]);
  testHook("igcamResults", results);
  return true;
}

function showOrRun() {
  if (busy || !haveImage) return;
  const t0 = performance.now();
  if (showCached()) {
    testHook("igcamShownMs", performance.now() - t0);
    status(`${results[0].label}: from the last run (no new computation)`);
  } else run();
}

async function run() {
  if (busy || !haveImage) return;
  busy = true;
  $("run").disabled = true;
  showError("");
  const methods = selectedMethods();
  const steps = Number($("steps").value);
  // The current choice first, then the rest (the top-5, every class present, every detection):
  // one pass explains them all. A method whose pass is per class (pixel IG, FullGrad) explains
  // the current one only.
  const t = currentTarget();
  const perClass = methods.some((m) => METHODS.find((x) => x.name === m)?.per_class);
  const targets = perClass ? [t] : [t, ...choices.map((c) => c.target).filter((i) => i !== t)];
  const what = { classify: "the top-5", segment: "every class present", detect: "every detection" }[task()];
  status(`${methods.map(displayName).join(", ")} for ${targets.length > 1 ? what : "this one"}…`);
  const progress = $("progress");
  const version = photoVersion;
  cancelRequested = false;
  $("cancel").hidden = false;
  try {
    const onProgress = (done, total) => { progress.max = total; progress.value = done; };
    // The batch is left to the library: its memory-aware default for the model.
    const maps = pool
      ? await pool.explain(methods, steps, Uint32Array.from(targets), $("layer").value, undefined, onProgress)
      : await wasm.explain(methods, steps, Uint32Array.from(targets), $("layer").value, undefined, onProgress, () => cancelRequested);
    if (version !== photoVersion) {
      status("the photo or model changed during the run: its maps were dropped");
      return;
    }
    for (const r of maps) cache.set(cacheKey(r.target, r.method), r);
    // Each map carries its share of the request's time, as in the CLI.
    const total = maps.reduce((ms, r) => ms + r.ms, 0);
    testHook("igcamLastRun", { ms: total, maps: maps.length });
    showCached();
    const kind = task() === "detect" ? "detections" : "classes";
    status(`done on ${maps[0].backend} in ${total.toFixed(0)} ms (${maps.length} maps: ${methods.length} method(s) × ${targets.length} ${kind})`);
  } catch (e) {
    if (cancelRequested) {
      status(`cancelled after ${progress.value} of ${progress.max} steps`);
    } else {
      showError(e.message || String(e));
      status("");
    }
  } finally {
    busy = false;
    $("cancel").hidden = true;
    $("run").disabled = !haveImage;
  }
}

// Files dropped or chosen together: a model may come with its external weights
// (`model.onnx` + `model.onnx.data`, PyTorch's dynamo exporter), else the first file counts.
async function handleFiles(list) {
  const files = Array.from(list);
  const model = files.find((f) => f.name.toLowerCase().endsWith(".onnx"));
  const data = model && files.find((f) => f !== model && !/\.(png|jpe?g)$/i.test(f.name));
  if (model) await handleFile(model, data);
  else if (files[0]) await handleFile(files[0]);
}

async function handleFile(file, dataFile) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (file.name.toLowerCase().endsWith(".onnx")) {
    try {
      const data = dataFile ? new Uint8Array(await dataFile.arrayBuffer()) : undefined;
      await setModel(bytes, "", dataFile ? dataFile.name : undefined, data);
      const extra = dataFile ? ` + ${dataFile.name}` : "";
      const kind = { classify: "", segment: "segmenter, ", detect: "detector, " }[modelInfo.task];
      $("model-status").textContent = `model: ${file.name}${extra} (${kind}${modelInfo.classes} classes)`;
      showError("");
      status(modelInfo.task === "classify" ? "model loaded; pick a photo" : `model loaded: ${modelInfo.task_reason}; pick a photo`);
    } catch (e) {
      showError(e.message || String(e));
    }
  } else {
    await setImage(bytes);
  }
}

async function fetchWithProgress(url, bar) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`cannot fetch ${url}: ${resp.status}`);
  const total = Number(resp.headers.get("content-length")) || 0;
  const reader = resp.body.getReader();
  const parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    if (total) { bar.max = total; bar.value = got; }
  }
  const out = new Uint8Array(got);
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

async function main(bindings) {
  wasm = bindings;
  const params = PARAMS;
  METHODS = wasm.methods();
  testHook("igcamMethods", METHODS);
  fillMethods();
  const mode = params.has("cpu") ? "cpu" : params.has("webgpu") ? "webgpu" : "auto";
  let { backend, skipped, threads: cpuThreads } = await wasm.init(mode);
  // The CPU path runs in a Web Worker: on a pool of them where the page is isolated, else on
  // one; on this thread only if no worker starts.
  let oneThread = null;
  if (!backend.startsWith("WebGPU")) {
    oneThread = singleThreadReason(params);
    const threads = oneThread ? 1 : Number(params.get("threads")) || navigator.hardwareConcurrency;
    const grace = Number(params.get("cancelgrace")) || undefined;
    let started = await startWorker(threads, grace);
    if (!started.worker && threads > 1) {
      oneThread = started.error;
      started = await startWorker(1, grace);
    }
    pool = started.worker;
    testHook("igcamWorker", pool);
    if (pool) {
      ({ backend, threads: cpuThreads } = started);
      // A worker that died is replaced and its request retried once: say so.
      pool.onRestart = (reason) => {
        const n = $("notice");
        n.textContent = `The explanation worker stopped (${reason}); a new one took over.`;
        n.hidden = false;
      };
    } else oneThread = started.error;
  }
  testHook("igcamBackend", backend);
  testHook("igcamSkippedAdapter", skipped);
  testHook("igcamThreads", cpuThreads);
  testHook("igcamOneThreadReason", oneThread);
  // The test counts the model loads of each module: the page's and the worker's.
  if (TEST) window.igcamModelLoads = async () => ({ page: wasm.models_loaded(), worker: pool ? await pool.modelsLoaded() : 0 });
  const where = !pool ? "" : cpuThreads > 1 ? " (Web Workers)" : " (a Web Worker)";
  $("backend").textContent = `running on ${backend}${where}`;
  if (oneThread) $("backend").textContent += ` — one thread: ${oneThread}`;
  const n = $("notice");
  if (skipped) {
    n.textContent = `This browser only offers a software WebGPU adapter (${skipped}), which is far slower than the CPU: running on the CPU. `;
    const a = document.createElement("a");
    a.href = "?webgpu";
    a.id = "force-webgpu";
    a.textContent = "Use WebGPU anyway";
    n.appendChild(a);
    n.hidden = false;
  } else if (!backend.startsWith("WebGPU") && mode !== "cpu") {
    n.textContent = "WebGPU is not available in this browser: running on the CPU instead.";
    n.hidden = false;
  }
  try {
    const model = await fetchWithProgress("efficientnet-lite0.onnx", $("model-progress"));
    const labels = await (await fetch("imagenet_labels.txt")).text();
    await setModel(model, labels);
    $("model-status").textContent = "model: EfficientNet-Lite0 (ImageNet, embedded default)";
  } catch (e) {
    showError(e.message || String(e));
  }
  for (const name of SAMPLES) {
    const img = document.createElement("img");
    img.src = `images/${name}`;
    img.alt = name;
    img.title = name;
    img.className = "sample";
    img.dataset.name = name;
    img.onclick = () => setImage(fetch(`images/${name}`).then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b)));
    $("samples").appendChild(img);
  }
  $("file").onchange = (ev) => handleFiles(ev.target.files);
  const drop = $("drop");
  drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (ev) => { ev.preventDefault(); drop.classList.remove("over"); handleFiles(ev.dataTransfer.files); };
  $("run").onclick = () => run();
  $("photo").onclick = (ev) => pickBox($("photo"), ev);
  $("cancel").onclick = () => { cancelRequested = true; pool?.cancel(); status("cancelling after this chunk…"); };
  $("method").onchange = () => { if (haveImage && results.length) showCached(); };
  $("steps").oninput = () => { $("steps-value").textContent = $("steps").value; };
  $("alpha").oninput = renderResults;
  $("colormap").onchange = renderResults;
  drawColorbar();
  testHook("igcamReady", true);
}

// First make the page cross-origin isolated where it is not (a reload under the service
// worker), then load the wasm core.
isolate(new URLSearchParams(location.search)).then((reloading) => reloading || init().then(() => main(bindings), (e) => {
  $("backend").textContent = "";
  showError(`the wasm core did not load (${e}); reload the page, or serve dist/ over http(s)`);
}));
