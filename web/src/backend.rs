//! Which device the page computes on: a real WebGPU adapter, else Burn's CPU backend.
//!
//! A software WebGPU adapter (SwiftShader, WARP, llvmpipe) is ~30× slower than the wasm CPU
//! path, so it is skipped unless the page asks for it (`?webgpu`).

use burn::tensor::Device;
use wasm_bindgen::{JsCast, JsValue};

/// What the page asks for (`?cpu`, `?webgpu`, or neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// A real GPU adapter if there is one, else the CPU.
    Auto,
    /// Any WebGPU adapter, software ones included.
    WebGpu,
    /// The CPU.
    Cpu,
}

impl Preference {
    /// `auto`, `webgpu` or `cpu`; anything else is `auto`.
    pub fn parse(s: &str) -> Self {
        match s {
            "webgpu" => Self::WebGpu,
            "cpu" => Self::Cpu,
            _ => Self::Auto,
        }
    }
}

/// The adapter `navigator.gpu.requestAdapter()` gave.
struct Adapter {
    name: String,
    software: bool,
}

/// Adapter names of software rasterisers, lower case.
const SOFTWARE_NAMES: &[&str] = &[
    "swiftshader",
    "llvmpipe",
    "lavapipe",
    "warp",
    "basic render",
];

/// `object[name]`, or `undefined`.
pub(crate) fn get(object: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(object, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

impl Adapter {
    fn from_js(adapter: &JsValue) -> Self {
        let info = get(adapter, "info");
        let field = |name: &str| get(&info, name).as_string().filter(|s| !s.is_empty());
        let name = field("description")
            .or_else(|| {
                let parts: Vec<String> = ["vendor", "architecture"]
                    .iter()
                    .filter_map(|f| field(f))
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
            .unwrap_or_else(|| "adapter".into());
        // `info.isFallbackAdapter` (current) or `adapter.isFallbackAdapter` (older browsers).
        let flagged = get(&info, "isFallbackAdapter").as_bool() == Some(true)
            || get(adapter, "isFallbackAdapter").as_bool() == Some(true);
        let lower = name.to_lowercase();
        let software = flagged || SOFTWARE_NAMES.iter().any(|s| lower.contains(s));
        Self { name, software }
    }
}

/// The adapter `navigator.gpu` gives, if it gives one.
async fn webgpu_adapter() -> Option<Adapter> {
    let navigator = web_sys::window()?.navigator();
    let gpu = get(&navigator, "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request = get(&gpu, "requestAdapter");
    let promise = request.dyn_ref::<js_sys::Function>()?.call0(&gpu).ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .ok()?;
    (!adapter.is_null() && !adapter.is_undefined()).then(|| Adapter::from_js(&adapter))
}

/// The opened device and what the page should say about it.
pub struct Opened {
    /// The device.
    pub device: Device,
    /// `WebGPU: <adapter>` or `CPU`.
    pub description: String,
    /// The software adapter that was skipped for the CPU, if one was.
    pub skipped: Option<String>,
}

/// `CPU`, or `CPU, N threads` in the threaded build.
fn cpu_description() -> String {
    match igcam::onnx::cpu_threads() {
        1 => "CPU".into(),
        n => format!("CPU, {n} threads"),
    }
}

/// Opens the device the preference asks for.
pub async fn open(preference: Preference) -> Opened {
    let cpu = |skipped| Opened {
        device: Device::flex(),
        description: cpu_description(),
        skipped,
    };
    if preference == Preference::Cpu {
        return cpu(None);
    }
    let Some(adapter) = webgpu_adapter().await else {
        return cpu(None);
    };
    if adapter.software && preference == Preference::Auto {
        return cpu(Some(adapter.name));
    }
    webgpu(adapter).await.unwrap_or_else(|| cpu(None))
}

/// Burn's wgpu device on the adapter, when it opens.
#[cfg(feature = "webgpu")]
async fn webgpu(adapter: Adapter) -> Option<Opened> {
    let device = Device::wgpu_options().init_async().await.ok()?;
    Some(Opened {
        device,
        description: format!("WebGPU: {}", adapter.name),
        skipped: None,
    })
}

/// The threaded CPU build has no WebGPU.
#[cfg(not(feature = "webgpu"))]
async fn webgpu(_adapter: Adapter) -> Option<Opened> {
    None
}
