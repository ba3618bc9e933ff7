//! The module's state: one device, one explainer, one prepared photo, and the photo's pixels to
//! draw on. Where the explanations run (the explanation worker on the CPU path, the page on
//! WebGPU) the model and the prepared photo live here; where the maps are drawn (the page) the
//! pixels do. The browser is single-threaded per module, so a thread-local holds it; handlers
//! take `Rc` snapshots so nothing stays borrowed across awaits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::tensor::Device;
use igcam::{Explainer, Prepared};
use image::RgbImage;
use wasm_bindgen::JsError;

/// A snapshot of the state.
#[derive(Clone)]
pub struct State {
    /// The compute device.
    pub device: Device,
    /// `WebGPU: ...` or `CPU`.
    pub description: String,
    /// The loaded model, with its labels and default layer.
    pub explainer: Option<Rc<Explainer>>,
    /// The current photo, run through the model once.
    pub photo: Option<Rc<Prepared>>,
    /// The current photo as uploaded, for the full-size overlay.
    pub source: Option<Rc<RgbImage>>,
}

impl State {
    /// The explainer, or an error telling the page to load a model.
    pub fn explainer(&self) -> Result<&Explainer, JsError> {
        self.explainer
            .as_deref()
            .ok_or_else(|| JsError::new("no model is loaded"))
    }

    /// The photo, or an error telling the page to pick one.
    pub fn photo(&self) -> Result<&Prepared, JsError> {
        self.photo
            .as_deref()
            .ok_or_else(|| JsError::new("no photo is loaded"))
    }

    /// The photo as uploaded, or an error telling the page to pick one.
    pub fn source(&self) -> Result<&RgbImage, JsError> {
        self.source
            .as_deref()
            .ok_or_else(|| JsError::new("no photo is loaded"))
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    /// Models loaded by this module since it started.
    static MODELS_LOADED: Cell<u32> = const { Cell::new(0) };
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
            explainer: None,
            photo: None,
            source: None,
        })
    });
}

/// Changes the state, if `init` has run.
fn update(f: impl FnOnce(&mut State)) {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            f(st);
        }
    });
}

/// Replaces the model (and forgets the photo, whose tensors belong to the old model).
pub fn set_explainer(explainer: Explainer) {
    MODELS_LOADED.with(|n| n.set(n.get() + 1));
    update(|st| {
        st.explainer = Some(Rc::new(explainer));
        st.photo = None;
        st.source = None;
    });
}

/// How many models [`set_explainer`] has taken.
pub fn models_loaded() -> u32 {
    MODELS_LOADED.with(Cell::get)
}

/// Replaces the prepared photo.
pub fn set_photo(photo: Prepared) {
    update(|st| st.photo = Some(Rc::new(photo)));
}

/// Replaces the photo to draw on.
pub fn set_source(source: RgbImage) {
    update(|st| st.source = Some(Rc::new(source)));
}
