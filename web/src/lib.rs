//! igcam in the browser: wasm-bindgen bindings over the core crate. All explanation maths stays
//! in `igcam`; this crate only picks the device, keeps the state (the model and photo where
//! they are computed on, the photo's pixels where it is drawn), drives the path in chunks with
//! a yield to the event loop between them, and hands pixels to the page. On the CPU path the
//! explanation worker (`explain-worker.js`) owns the model and the photo; the page only draws.

mod backend;
mod state;

use igcam::cam::{self, Method};
use igcam::error::{Setting, Spelling};
use igcam::render::{self, Colormap};
use igcam::task::Task;
use igcam::{Explainer, ExplainerOptions, Request, labels};
use js_sys::{Function, Promise};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
/// The threaded build's `initThreadPool(n)`: starts `n` Web Workers for rayon (the page calls
/// it once, from the Web Worker that runs the explanations: the pool blocks its caller).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The page's words for the library's settings: its controls.
struct PageSpelling;

impl Spelling for PageSpelling {
    fn name(&self, setting: Setting) -> String {
        match setting {
            Setting::Steps => "Steps",
            Setting::Batch => "the batch",
            Setting::Force => "force",
            Setting::Layer | Setting::LayerList => "the Layer list",
            Setting::Target => "the class",
            Setting::MaxPixels => "the largest photo size",
            Setting::NoCrop => "whole-photo mode",
            Setting::Lenient => "lenient decoding",
            Setting::NtSamples => "the noise samples",
            Setting::NtStdev => "the noise level",
            Setting::Metrics => "the metrics",
            Setting::Task => "the task",
            Setting::Conf => "the confidence threshold",
            Setting::Iou => "the IoU threshold",
            Setting::MaxDet => "the detection limit",
        }
        .to_string()
    }

    fn set(&self, setting: Setting) -> String {
        match setting {
            Setting::Layer => "pick one in the Layer list".into(),
            s => format!("set {}", self.name(s)),
        }
    }
}

/// A library error, worded for the page.
fn igcam_err(e: igcam::Error) -> JsError {
    JsError::new(&e.render(&PageSpelling))
}

/// Milliseconds from the page's clock, for each map's share of a request's time.
fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Lets the browser run its event loop before the next chunk, through the next frame: the
/// progress bar is painted and a click (Cancel) reaches its button. Where frames are paused (a
/// background tab), after at most 100 ms instead. In a Web Worker (the page's CPU path, either
/// build), through one `setTimeout(0)`: the worker's messages (Cancel) are handled in between.
async fn yield_to_browser() {
    let promise = Promise::new(&mut |resolve, _| match web_sys::window() {
        Some(window) => {
            let after_paint = resolve.clone();
            let after_frame = Closure::once_into_js(move || {
                if let Some(window) = web_sys::window() {
                    let _ = window
                        .set_timeout_with_callback_and_timeout_and_arguments_0(&after_paint, 0);
                }
            });
            let _ = window.request_animation_frame(after_frame.unchecked_ref());
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 100);
        }
        None => {
            let global = js_sys::global();
            match backend::get(&global, "setTimeout")
                .dyn_into::<Function>()
                .ok()
            {
                Some(f) => {
                    let _ = f.call2(&global, &resolve, &0.into());
                }
                None => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

async fn host(t: burn::tensor::Tensor<4>) -> Result<Vec<f32>, JsError> {
    t.into_data_async()
        .await
        .map_err(|e| js_err(format!("{e:?}")))?
        .try_into_vec_as::<f32>()
        .map_err(|e| js_err(format!("{e:?}")))
}

/// What `init` opened, for the page.
#[derive(Serialize)]
struct Backend {
    /// `WebGPU: <adapter>`, `CPU` or `CPU, N threads`.
    backend: String,
    /// The threads the CPU kernels use (1 but in the threaded build).
    threads: usize,
    /// The software WebGPU adapter skipped for the CPU, if one was.
    skipped: Option<String>,
}

/// Opens the compute device. `mode` is `auto` (a real WebGPU adapter, else the CPU: a
/// software adapter such as SwiftShader is skipped), `webgpu` (any adapter) or `cpu`.
#[wasm_bindgen]
pub async fn init(mode: String) -> Result<JsValue, JsError> {
    console_panic_hook();
    let opened = backend::open(backend::Preference::parse(&mode)).await;
    state::set_device(opened.device, opened.description.clone());
    Ok(serde_wasm_bindgen::to_value(&Backend {
        backend: opened.description,
        threads: igcam::onnx::cpu_threads(),
        skipped: opened.skipped,
    })?)
}

fn console_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("igcam panicked: {info}").into());
    }));
}

/// One row of the method table, for the page's method list.
#[derive(Serialize)]
struct MethodRow {
    /// The name the page sends back (`igcam`, `gradcam`, ...).
    name: &'static str,
    /// The name people read.
    display: &'static str,
    /// Whether its pass is per class (pixel IG, FullGrad): the page then explains the current
    /// class only.
    per_class: bool,
    /// Its cost beyond the shared pass, for people ("" when nothing worth saying).
    cost: &'static str,
    /// Whether that cost is far above the shared pass.
    slow: bool,
    /// Whether "compare all" shows it.
    compare: bool,
}

/// Every method of the library's table, in its order: the page lists them all.
#[wasm_bindgen]
pub fn methods() -> Result<JsValue, JsError> {
    let rows: Vec<MethodRow> = Method::all()
        .map(|m| MethodRow {
            name: m.name(),
            display: m.display(),
            per_class: m.explains_input(),
            cost: m.cost(),
            slow: m.is_slow(),
            compare: m.in_compare(),
        })
        .collect();
    Ok(serde_wasm_bindgen::to_value(&rows)?)
}

/// What the page needs to know about a model.
#[derive(Serialize)]
struct ModelInfo {
    classes: usize,
    input: [usize; 2],
    layers: Vec<igcam::onnx::LayerInfo>,
    default_layer: Option<String>,
    /// The layers explained together when none is picked (a detector's neck outputs, one per
    /// scale, their maps averaged); empty where one layer is the default.
    default_layers: Vec<String>,
    /// `classify`, `segment` or `detect`.
    task: &'static str,
    /// Why the task was inferred, in words (for a segmenter or a detector).
    task_reason: String,
}

/// Loads an ONNX classifier, segmenter or detector and its labels (one per line; empty or
/// of another length: the names the file holds, or those its class count gives away).
/// `data_name` and `data` are an external weights file dropped with the model
/// (`model.onnx.data`, PyTorch's `dynamo=True` export), when there is one.
#[wasm_bindgen]
pub fn load_model(
    bytes: &[u8],
    labels_text: &str,
    data_name: Option<String>,
    data: Option<Vec<u8>>,
) -> Result<JsValue, JsError> {
    let device = state::device()?;
    let mut files = igcam::onnx::external::DataFiles::default();
    if let (Some(name), Some(data)) = (data_name, data) {
        files.add(name, data);
    }
    let model =
        igcam::onnx::OnnxModel::from_bytes_and_data(bytes, &files, &device).map_err(igcam_err)?;
    let (task, task_reason) = Task::of(&model);
    let mut labels = labels::parse_labels(labels_text);
    if labels.len() != model.num_classes() {
        labels = Task::model_labels(&model).unwrap_or_default();
    }
    let default_layers = match model.default_layers_reason() {
        Some((layers, _)) if layers.len() > 1 => layers,
        _ => Vec::new(),
    };
    let info = ModelInfo {
        classes: model.num_classes(),
        input: model.input_size(),
        layers: model.layers(),
        default_layer: model.default_layer(),
        default_layers,
        task: task.name(),
        task_reason,
    };
    let options = ExplainerOptions {
        preset: Task::default_preset(&model),
        ..ExplainerOptions::default()
    };
    let explainer = Explainer::new(model, labels, options).map_err(igcam_err)?;
    state::set_explainer(explainer);
    Ok(serde_wasm_bindgen::to_value(&info)?)
}

/// How many models this module has loaded (a test of the page counts the loads of each path).
#[wasm_bindgen]
pub fn models_loaded() -> u32 {
    state::models_loaded()
}

/// What the page learns about a new photo.
#[derive(Serialize)]
struct Photo {
    /// The five best classes (a segmenter's: the largest regions; a detector's: the classes
    /// of its best detections).
    top5: Vec<labels::Prediction>,
    /// What the page offers to explain, the first explained by default: a classifier's top-5
    /// classes, a segmenter's classes present (the largest region first), a detector's
    /// detections (the best first). All of them are explained in one request.
    choices: Vec<Choice>,
    /// A segmenter's best class at each pixel of its output plane (its regions, to outline).
    regions: Option<RegionMap>,
    /// The photo's `[width, height]` as uploaded.
    size: [u32; 2],
    /// The region the model sees (the centre crop), in the photo's pixels.
    crop: igcam::metrics::PixelBox,
}

/// One thing the page can explain: a class, a segmenter's class region or a detection.
#[derive(Serialize)]
struct Choice {
    /// The request's target: the class, or the detection's index.
    target: usize,
    label: String,
    /// Its probability, its region's share of the pixels, or the detection's confidence.
    score: f32,
    /// A detection's box `[x0, y0, x1, y1]` in the photo's pixels.
    bbox: Option<[f32; 4]>,
}

/// A segmenter's regions: the best class at each pixel of its `height × width` output plane.
#[derive(Serialize)]
struct RegionMap {
    height: usize,
    width: usize,
    classes: Vec<u32>,
}

/// The page's choices for a prepared photo (see [`Photo::choices`]).
fn choices(prepared: &igcam::Prepared) -> Vec<Choice> {
    if let Some(detections) = prepared.detections() {
        return (0..detections.len())
            .map(|i| {
                let p = prepared.target_prediction(i);
                Choice {
                    target: i,
                    label: p.label,
                    score: p.prob,
                    bbox: Some(prepared.geometry.unmap_box(detections[i].bbox)),
                }
            })
            .collect();
    }
    let classes = match prepared.regions() {
        Some(r) => r.present(),
        None => prepared.top(5).iter().map(|p| p.index).collect(),
    };
    classes
        .into_iter()
        .map(|c| {
            let p = prepared.prediction(c);
            Choice {
                target: c,
                label: p.label,
                score: p.prob,
                bbox: None,
            }
        })
        .collect()
}

/// Decodes a photo, fits it to the model input and returns its top-5 classes, what can be
/// explained, its size and crop; it becomes the photo that `explain` uses (and `overlay_rgba`
/// draws on).
#[wasm_bindgen]
pub async fn set_image(bytes: Vec<u8>) -> Result<JsValue, JsError> {
    let s = state::get()?;
    let explainer = s.explainer()?;
    let image = igcam::preprocess::decode(&bytes).map_err(igcam_err)?;
    // The logits are read back without blocking (WebGPU cannot block).
    let preparing = explainer.start_prepare(&image).map_err(igcam_err)?;
    let values = explainer.model().outputs_per_image();
    let logits = host(preparing.logits().reshape([1, 1, 1, values])).await?;
    let prepared = preparing.finish(logits, explainer.labels());
    let source = image.into_rgb8();
    let [height, width] = explainer.model().output_plane();
    let photo = Photo {
        top5: prepared.top(5).to_vec(),
        choices: choices(&prepared),
        regions: prepared.regions().map(|r| RegionMap {
            height,
            width,
            classes: r.best().iter().map(|&c| c as u32).collect(),
        }),
        size: [source.width(), source.height()],
        crop: prepared.geometry.crop_box(),
    };
    state::set_photo(prepared);
    state::set_source(source);
    Ok(serde_wasm_bindgen::to_value(&photo)?)
}

/// The current photo as decoded, as RGBA pixels (what the explanation worker hands the page
/// to draw).
#[wasm_bindgen]
pub fn photo_rgba() -> Result<Vec<u8>, JsError> {
    let s = state::get()?;
    Ok(image::DynamicImage::ImageRgb8(s.source()?.clone())
        .to_rgba8()
        .into_raw())
}

/// The photo to draw on, as RGBA pixels `width` x `height`: the page on the CPU path, whose
/// worker decoded it.
#[wasm_bindgen]
pub fn set_source_rgba(rgba: Vec<u8>, width: u32, height: u32) -> Result<(), JsError> {
    let rgba = image::RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| JsError::new("the photo's pixels do not fill its size"))?;
    state::set_source(image::DynamicImage::ImageRgba8(rgba).into_rgb8());
    Ok(())
}

/// The explanation handed to the page (and to the end-to-end test through `window`).
#[derive(Serialize)]
struct Explanation {
    method: String,
    target: usize,
    label: String,
    steps: usize,
    layer: String,
    backend: String,
    height: usize,
    width: usize,
    values: Vec<f32>,
    ms: f64,
}

/// Explains every class of `targets` (empty: the top-1) with every method of `methods` (names
/// from [`methods`]) on the current photo in one request: the backbone runs once per chunk of
/// path points for all of them. `batch`: path points per chunk (`undefined`: the model's
/// memory-aware default). Calls `on_progress(done, total)` after each chunk and yields to the
/// browser in between; stops with the error `cancelled` when `should_stop()` is true then.
/// Returns the maps target-major; each map's `ms` is its share of the request's time, as in
/// the CLI.
#[wasm_bindgen]
pub async fn explain(
    methods: Vec<String>,
    steps: usize,
    targets: Vec<u32>,
    layer: Option<String>,
    batch: Option<usize>,
    on_progress: Function,
    should_stop: Function,
) -> Result<JsValue, JsError> {
    let s = state::get()?;
    let explainer = s.explainer()?;
    let photo = s.photo()?;
    let methods = methods
        .iter()
        .map(|m| Method::parse(m))
        .collect::<igcam::Result<Vec<_>>>()
        .map_err(igcam_err)?;
    let targets = if targets.is_empty() {
        vec![photo.ranked[0].index]
    } else {
        targets.into_iter().map(|t| t as usize).collect()
    };
    // WebGPU cannot block, and these methods read tensors back mid-request.
    if s.description.starts_with("WebGPU")
        && let Some(m) = methods.iter().find(|m| m.reads_back())
    {
        return Err(JsError::new(&format!(
            "{} reads results back while it runs, which WebGPU in a browser cannot wait for: open the page with ?cpu to run it on the CPU, or pick another method",
            m.display()
        )));
    }
    let mut request = Request::new(targets, methods, steps);
    request.layer = layer.filter(|l| !l.is_empty());
    request.batch = batch;
    request.clock = Some(now_ms);
    let mut explaining = explainer.start(photo, &request).map_err(igcam_err)?;
    while !explaining.is_done() {
        let (done, total) = explaining.step().map_err(igcam_err)?;
        let _ = on_progress.call2(
            &JsValue::NULL,
            &(done as u32).into(),
            &(total as u32).into(),
        );
        yield_to_browser().await;
        if should_stop
            .call0(&JsValue::NULL)
            .is_ok_and(|stop| stop.is_truthy())
        {
            return Err(JsError::new("cancelled"));
        }
    }
    let finished = explaining.finish().map_err(igcam_err)?;
    let mut maps = Vec::with_capacity(finished.maps.len());
    for map in finished.maps {
        let [_, _, height, width] = map.map.dims();
        let start = now_ms();
        let values = host(map.map.clone()).await?;
        let read = map.try_map(|_| {
            Ok::<_, JsError>(cam::CamMap {
                height,
                width,
                values,
            })
        })?;
        // Its share of the chunks, and its own read-back.
        maps.push(igcam::Explanation {
            ms: read.ms + now_ms() - start,
            ..read
        });
    }
    // Several layers (a detector's neck): each CAM map the mean of its per-layer maps.
    if let Some(average) = &finished.layer_average {
        maps = average.apply(maps);
    }
    let out: Vec<Explanation> = maps
        .into_iter()
        .map(|map| Explanation {
            method: map.method.name().into(),
            target: map.target,
            label: photo.target_prediction(map.target).label,
            steps: map.steps,
            layer: map.layer,
            backend: s.description.clone(),
            height: map.map.height,
            width: map.map.width,
            values: map.map.values,
            ms: map.ms,
        })
        .collect();
    Ok(serde_wasm_bindgen::to_value(&out)?)
}

/// What is drawn over an overlay besides the map: a detector's boxes (in the photo's pixels;
/// `chosen`, the one explained, in green and thicker, the others in white, as the CLI draws
/// them), or a segmenter's explained region, outlined where the model saw it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Marks {
    boxes: Vec<[f32; 4]>,
    chosen: Option<usize>,
    region: Option<cam::CamMap>,
}

/// The overlay of a raw map on the whole photo (RGBA, the photo's size): the map covers the
/// region the model saw, `crop` (`{x0, y0, x1, y1}` from `set_image`), which is outlined.
/// `marks` (optional, see [`Marks`]): `{boxes, chosen}` or `{region: {height, width,
/// values}}`, the region's pixels non-zero.
#[wasm_bindgen]
pub fn overlay_rgba(
    values: Vec<f32>,
    height: usize,
    width: usize,
    crop: JsValue,
    colormap: &str,
    alpha: f32,
    marks: JsValue,
) -> Result<Vec<u8>, JsError> {
    let s = state::get()?;
    let crop: igcam::metrics::PixelBox = serde_wasm_bindgen::from_value(crop)?;
    let marks: Marks = if marks.is_undefined() || marks.is_null() {
        Marks::default()
    } else {
        serde_wasm_bindgen::from_value(marks)?
    };
    let map = cam::CamMap {
        height,
        width,
        values,
    };
    let mut over = render::overlay_region(
        s.source()?,
        &map,
        crop,
        Colormap::parse(colormap).map_err(igcam_err)?,
        alpha,
    );
    if let Some(region) = &marks.region {
        if region.values.len() != region.height * region.width {
            return Err(JsError::new("the region's values do not fill its size"));
        }
        render::outline_mask(&mut over, region, crop);
    }
    for (i, &b) in marks.boxes.iter().enumerate() {
        if Some(i) != marks.chosen {
            render::draw_box(&mut over, b, [255, 255, 255], 1);
        }
    }
    if let Some(&b) = marks.chosen.and_then(|i| marks.boxes.get(i)) {
        render::draw_box(&mut over, b, [0, 255, 0], 2);
    }
    Ok(image::DynamicImage::ImageRgb8(over).to_rgba8().into_raw())
}

/// A horizontal colour bar, `width` x 1 RGBA pixels, low values on the left.
#[wasm_bindgen]
pub fn colorbar_rgba(colormap: &str, width: usize) -> Result<Vec<u8>, JsError> {
    let c = Colormap::parse(colormap).map_err(igcam_err)?;
    Ok((0..width)
        .flat_map(|i| {
            let [r, g, b] = c.rgb(i as f32 / (width.max(2) - 1) as f32);
            [r, g, b, 255]
        })
        .collect())
}
