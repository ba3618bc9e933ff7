//! igcam in the browser: wasm-bindgen bindings over the core crate. All explanation maths stays
//! in `igcam`; this crate only picks the device, keeps the page's state, drives the path in
//! chunks with a yield to the event loop between them, and hands pixels to the page.

mod backend;
mod state;

use igcam::cam::{self, Method};
use igcam::render::{self, Colormap};
use igcam::{Explainer, ExplainerOptions, Request, labels};
use js_sys::{Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Lets the browser run its event loop (paint, input) before the next chunk.
async fn yield_to_browser() {
    let promise = Promise::new(&mut |resolve, _| {
        let window = web_sys::window().expect("a window");
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
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

/// Opens the compute device: WebGPU when `prefer_gpu` and the browser gives an adapter, else
/// the CPU. Returns a description of what runs (`WebGPU: <adapter>` or `CPU`).
#[wasm_bindgen]
pub async fn init(prefer_gpu: bool) -> String {
    console_panic_hook();
    let (device, description) = backend::open(prefer_gpu).await;
    state::set_device(device, description.clone());
    description
}

fn console_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("igcam panicked: {info}").into());
    }));
}

/// What the page needs to know about a model.
#[derive(Serialize)]
struct ModelInfo {
    classes: usize,
    input: [usize; 2],
    layers: Vec<igcam::onnx::LayerInfo>,
    default_layer: Option<String>,
}

/// Loads an ONNX classifier and its labels (one per line; may be empty).
#[wasm_bindgen]
pub fn load_model(bytes: &[u8], labels_text: &str) -> Result<JsValue, JsError> {
    let device = state::device()?;
    let model = igcam::onnx::OnnxModel::from_bytes(bytes, &device).map_err(js_err)?;
    let mut labels = labels::parse_labels(labels_text);
    if labels.len() != model.num_classes() {
        labels.clear();
    }
    let info = ModelInfo {
        classes: model.num_classes(),
        input: model.input_size(),
        layers: model.layers(),
        default_layer: model.default_layer(),
    };
    let explainer = Explainer::new(model, labels, ExplainerOptions::default()).map_err(js_err)?;
    state::set_explainer(explainer);
    Ok(serde_wasm_bindgen::to_value(&info)?)
}

/// Decodes a photo, fits it to the model input and returns the top-5 classes; the fitted photo
/// becomes the one that `explain` and `overlay` use.
#[wasm_bindgen]
pub async fn set_image(bytes: Vec<u8>) -> Result<JsValue, JsError> {
    let s = state::get()?;
    let explainer = s.explainer()?;
    let image = igcam::preprocess::decode(&bytes).map_err(js_err)?;
    // The logits are read back without blocking (WebGPU cannot block).
    let preparing = explainer.start_prepare(&image).map_err(js_err)?;
    let classes = explainer.model().num_classes();
    let logits = host(preparing.logits().reshape([1, 1, 1, classes])).await?;
    let prepared = preparing.finish(logits, explainer.labels());
    let top5 = prepared.top(5).to_vec();
    state::set_photo(prepared);
    Ok(serde_wasm_bindgen::to_value(&top5)?)
}

/// The current photo as RGBA pixels (model input size).
#[wasm_bindgen]
pub fn photo_rgba() -> Result<Vec<u8>, JsError> {
    let s = state::get()?;
    let photo = s.photo()?;
    Ok(image::DynamicImage::ImageRgb8(photo.photo.clone())
        .to_rgba8()
        .into_raw())
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

/// Explains `target` (-1: top-1) with `method` (igcam, gradcam, gradcampp, xgradcam, layercam,
/// ig) on the current photo, calling `on_progress(done, total)` after each chunk of `batch`
/// path steps and yielding to the browser in between.
#[wasm_bindgen]
pub async fn explain(
    method: String,
    steps: usize,
    target: i32,
    layer: Option<String>,
    batch: usize,
    on_progress: Function,
) -> Result<JsValue, JsError> {
    let s = state::get()?;
    let explainer = s.explainer()?;
    let photo = s.photo()?;
    let method = Method::parse(&method).map_err(js_err)?;
    let target = if target < 0 {
        photo.ranked[0].index
    } else {
        target as usize
    };
    let mut request = Request::new(vec![target], vec![method], steps);
    request.layer = layer.filter(|l| !l.is_empty());
    request.batch = Some(batch.max(1));
    let start = js_sys::Date::now();
    let mut explaining = explainer.start(photo, &request).map_err(js_err)?;
    while !explaining.is_done() {
        let (done, total) = explaining.step().map_err(js_err)?;
        let _ = on_progress.call2(
            &JsValue::NULL,
            &(done as u32).into(),
            &(total as u32).into(),
        );
        yield_to_browser().await;
    }
    let map = explaining
        .finish()
        .map_err(js_err)?
        .maps
        .pop()
        .ok_or_else(|| js_err("no map was computed"))?;
    let [_, _, height, width] = map.map.dims();
    let values = host(map.map).await?;
    let out = Explanation {
        method: method.name().into(),
        target,
        label: labels::prediction(&photo.logits, explainer.labels(), target).label,
        steps: map.steps,
        layer: map.layer,
        backend: s.description.clone(),
        height,
        width,
        values,
        ms: js_sys::Date::now() - start,
    };
    Ok(serde_wasm_bindgen::to_value(&out)?)
}

/// The overlay of a raw map on the current photo as RGBA pixels.
#[wasm_bindgen]
pub fn overlay_rgba(
    values: Vec<f32>,
    height: usize,
    width: usize,
    colormap: &str,
    alpha: f32,
) -> Result<Vec<u8>, JsError> {
    let s = state::get()?;
    let photo = s.photo()?;
    let (h, w) = (photo.photo.height() as usize, photo.photo.width() as usize);
    let map = cam::CamMap {
        height,
        width,
        values,
    };
    let heat = render::heatmap(
        &render::upsample_bilinear(&map, h, w),
        Colormap::parse(colormap).map_err(js_err)?,
    );
    let over = render::overlay(&photo.photo, &heat, alpha);
    Ok(image::DynamicImage::ImageRgb8(over).to_rgba8().into_raw())
}

/// A horizontal colour bar, `width` x 1 RGBA pixels, low values on the left.
#[wasm_bindgen]
pub fn colorbar_rgba(colormap: &str, width: usize) -> Result<Vec<u8>, JsError> {
    let c = Colormap::parse(colormap).map_err(js_err)?;
    Ok((0..width)
        .flat_map(|i| {
            let [r, g, b] = c.rgb(i as f32 / (width.max(2) - 1) as f32);
            [r, g, b, 255]
        })
        .collect())
}
