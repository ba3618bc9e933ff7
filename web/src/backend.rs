//! WebGPU when the browser offers an adapter, Burn's CPU backend otherwise.

use burn::tensor::Device;
use wasm_bindgen::JsCast;

/// A readable name from a `GPUAdapterInfo`: its description, else vendor and architecture.
fn adapter_name(adapter: &wasm_bindgen::JsValue) -> String {
    let info =
        js_sys::Reflect::get(adapter, &"info".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    let field = |name: &str| {
        js_sys::Reflect::get(&info, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    field("description")
        .or_else(|| {
            let parts: Vec<String> = ["vendor", "architecture"]
                .iter()
                .filter_map(|f| field(f))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "adapter".into())
}

/// The name of the adapter `navigator.gpu` gives, if it gives one.
async fn webgpu_adapter() -> Option<String> {
    let navigator = web_sys::window()?.navigator();
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).ok()?;
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request = js_sys::Reflect::get(&gpu, &"requestAdapter".into()).ok()?;
    let promise = request.dyn_ref::<js_sys::Function>()?.call0(&gpu).ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .ok()?;
    (!adapter.is_null() && !adapter.is_undefined()).then(|| adapter_name(&adapter))
}

/// Opens the device: `(device, description)`.
pub async fn open(prefer_gpu: bool) -> (Device, String) {
    if prefer_gpu
        && let Some(name) = webgpu_adapter().await
        && let Ok(device) = Device::wgpu_options().init_async().await
    {
        return (device, format!("WebGPU: {name}"));
    }
    (Device::flex(), "CPU".into())
}
