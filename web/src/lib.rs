//! igcam in the browser: wasm-bindgen bindings over the core crate. All explanation maths stays
//! in `igcam`; this crate only picks the device, keeps the page's state, drives the path in
//! chunks with a yield to the event loop between them, and hands pixels to the page.

mod backend;
mod state;

use igcam::cam::{self, Method, PathRun};
use igcam::labels;
use igcam::render::{self, Colormap};
use js_sys::{Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use state::Photo;

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
    state::set_model(model, labels);
    Ok(serde_wasm_bindgen::to_value(&info)?)
}

/// Decodes a photo, fits it to the model input and returns the top-5 classes; the fitted photo
/// becomes the one that `explain` and `overlay` use.
#[wasm_bindgen]
pub async fn set_image(bytes: Vec<u8>) -> Result<JsValue, JsError> {
    let s = state::get()?;
    let model = s.model()?;
    let size = model.input_size();
    let image = igcam::preprocess::decode(&bytes).map_err(js_err)?;
    let rgb = igcam::preprocess::fit(&image, size, true);
    let (x, b) = igcam::input_pair(&rgb, Default::default(), Default::default(), &s.device);
    let logits =
        host(
            model
                .forward(x.clone())
                .map_err(js_err)?
                .reshape([1, 1, 1, model.num_classes()]),
        )
        .await?;
    let ranked = labels::ranked(&logits, &s.labels);
    state::set_photo(Photo { rgb, x, b, logits });
    Ok(serde_wasm_bindgen::to_value(
        &ranked.into_iter().take(5).collect::<Vec<_>>(),
    )?)
}

/// The current photo as RGBA pixels (model input size).
#[wasm_bindgen]
pub fn photo_rgba() -> Result<Vec<u8>, JsError> {
    let s = state::get()?;
    let photo = s.photo()?;
    Ok(image::DynamicImage::ImageRgb8(photo.rgb.clone())
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
    let model = s.model()?;
    let photo = s.photo()?;
    let method = Method::parse(&method).map_err(js_err)?;
    let alphas = cam::path_alphas(method, false, steps).map_err(js_err)?;
    let target = if target < 0 {
        labels::ranked(&photo.logits, &s.labels)[0].index
    } else {
        target as usize
    };
    let layer = match layer.filter(|l| !l.is_empty()) {
        Some(l) => l,
        None => model
            .default_layer()
            .ok_or_else(|| js_err("the model has no 4-D activation to explain"))?,
    };
    let run = PathRun {
        model,
        input: &photo.x,
        baseline: &photo.b,
        target,
        alphas: &alphas,
        batch: batch.max(1),
    };
    if method.cam().is_some() {
        model.layer_shape(&layer).map_err(js_err)?;
    }
    let start = js_sys::Date::now();
    let mut explaining = cam::Explaining::new(&run, method, &layer).map_err(js_err)?;
    while !explaining.is_done() {
        let (done, total) = explaining.step().map_err(js_err)?;
        let _ = on_progress.call2(
            &JsValue::NULL,
            &(done as u32).into(),
            &(total as u32).into(),
        );
        yield_to_browser().await;
    }
    let total = explaining.finish();
    let [_, _, height, width] = total.dims();
    let values = host(total).await?;
    let out = Explanation {
        method: method.name().into(),
        target,
        label: labels::prediction(&photo.logits, &s.labels, target).label,
        steps: alphas.len(),
        layer: if method.cam().is_some() {
            layer
        } else {
            "input".into()
        },
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
    let (h, w) = (photo.rgb.height() as usize, photo.rgb.width() as usize);
    let map = cam::CamMap {
        height,
        width,
        values,
    };
    let heat = render::heatmap(
        &render::upsample_bilinear(&map, h, w),
        Colormap::parse(colormap).map_err(js_err)?,
    );
    let over = render::overlay(&photo.rgb, &heat, alpha);
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
