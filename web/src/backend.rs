//! WebGPU when the browser offers an adapter, Burn's CPU backend otherwise.

use burn::tensor::Device;
use wasm_bindgen::JsCast;

/// Whether `navigator.gpu` exists and yields an adapter.
async fn webgpu_adapter() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let navigator = window.navigator();
    let gpu =
        js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return false;
    }
    let Ok(request) = js_sys::Reflect::get(&gpu, &"requestAdapter".into()) else {
        return false;
    };
    let Some(request) = request.dyn_ref::<js_sys::Function>() else {
        return false;
    };
    let Ok(promise) = request.call0(&gpu) else {
        return false;
    };
    match wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await {
        Ok(adapter) => !adapter.is_null() && !adapter.is_undefined(),
        Err(_) => false,
    }
}

/// Opens the device: `(device, description)`.
pub async fn open(prefer_gpu: bool) -> (Device, String) {
    if prefer_gpu && webgpu_adapter().await {
        if let Ok(device) = Device::wgpu_options().init_async().await {
            let name = device
                .identity()
                .map(|i| i.name)
                .unwrap_or_else(|| "adapter".into());
            return (device, format!("WebGPU: {name}"));
        }
    }
    (Device::flex(), "CPU".into())
}
