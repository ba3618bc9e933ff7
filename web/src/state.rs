//! The page's state: one device, one model, one photo. The browser is single-threaded, so a
//! thread-local holds it; handlers take `Rc` snapshots so nothing stays borrowed across awaits.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{Device, Tensor};
use igcam::onnx::OnnxModel;
use image::RgbImage;
use wasm_bindgen::JsError;

/// The current photo, fitted to the model input, with its tensors and logits.
pub struct Photo {
    /// RGB pixels at the model's input size.
    pub rgb: RgbImage,
    /// Normalised image `[1, 3, H, W]`.
    pub x: Tensor<4>,
    /// Normalised black baseline.
    pub b: Tensor<4>,
    /// Logits of the photo.
    pub logits: Vec<f32>,
}

/// A snapshot of the state.
#[derive(Clone)]
pub struct State {
    /// The compute device.
    pub device: Device,
    /// `WebGPU: ...` or `CPU`.
    pub description: String,
    /// The loaded model.
    pub model: Option<Rc<OnnxModel>>,
    /// Its labels (empty when unknown).
    pub labels: Vec<String>,
    /// The current photo.
    pub photo: Option<Rc<Photo>>,
}

impl State {
    /// The model, or an error telling the page to load one.
    pub fn model(&self) -> Result<&OnnxModel, JsError> {
        self.model
            .as_deref()
            .ok_or_else(|| JsError::new("no model is loaded"))
    }

    /// The photo, or an error telling the page to pick one.
    pub fn photo(&self) -> Result<&Photo, JsError> {
        self.photo
            .as_deref()
            .ok_or_else(|| JsError::new("no photo is loaded"))
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// A snapshot of the state (after `init`).
pub fn get() -> Result<State, JsError> {
    STATE
        .with(|s| s.borrow().clone())
        .ok_or_else(|| JsError::new("call init() first"))
}

/// The device (after `init`).
pub fn device() -> Result<Device, JsError> {
    get().map(|s| s.device)
}

/// Records the device chosen by `init`.
pub fn set_device(device: Device, description: String) {
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            device,
            description,
            model: None,
            labels: Vec::new(),
            photo: None,
        })
    });
}

/// Replaces the model (and forgets the photo, whose tensors belong to the old input size).
pub fn set_model(model: OnnxModel, labels: Vec<String>) {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.model = Some(Rc::new(model));
            st.labels = labels;
            st.photo = None;
        }
    });
}

/// Replaces the photo.
pub fn set_photo(photo: Photo) {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.photo = Some(Rc::new(photo));
        }
    });
}
