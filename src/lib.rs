//! # igcam
//!
//! Integrated Grad-CAM (Sattarzadeh et al., ICASSP 2021) and related explanation methods for
//! any ONNX convolutional classifier, on Burn: wgpu (Vulkan, Metal, DX12, WebGPU) or the CPU.
//!
//! The core reads no files, spawns no threads and looks at no clock: bytes in, maps out.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use igcam::{Explainer, ExplainerOptions, Request, cam::Method, onnx::OnnxModel, preprocess};
//!
//! # fn main() -> igcam::Result<()> {
//! let model = OnnxModel::from_bytes(&std::fs::read("model.onnx").unwrap(), &Device::flex())?;
//! let explainer = Explainer::new(model, Vec::new(), ExplainerOptions::default())?;
//! let photo = explainer.prepare(&preprocess::decode(&std::fs::read("cat.png").unwrap())?)?;
//! // The five best classes, each explained with IG-CAM and Grad-CAM, in one set of passes.
//! let targets = explainer.resolve_targets(&photo, &["top5"])?;
//! let methods = Method::parse_list(&["igcam", "gradcam"])?;
//! let maps = explainer.explain(&photo, &Request::new(targets, methods, 50), &mut |_, _| {})?;
//! for e in &maps {
//!     println!("{} of class {}: {}x{} map", e.label, e.target, e.map.height, e.map.width);
//! }
//! # Ok(()) }
//! ```

pub mod budget;
pub mod cam;
pub mod data;
mod error;
pub mod explainer;
pub mod labels;
pub mod metrics;
pub mod onnx;
pub mod preprocess;
pub mod render;
pub mod resample;

use burn::tensor::{Device, Tensor, TensorData};

pub use error::{Error, Result};
pub use explainer::{Explainer, ExplainerOptions, Explanation, Prepared, Preparing, Request};

/// Wraps normalised CHW floats as a `[1, 3, H, W]` tensor on `device`.
pub fn image_tensor(chw: Vec<f32>, size: [usize; 2], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(chw, [1, 3, size[0], size[1]]), device)
}

/// The normalised image and its path baseline as `[1, 3, H, W]` tensors, for a photo already
/// at the model's input size.
pub fn input_pair(
    photo: &image::RgbImage,
    preset: preprocess::Preset,
    baseline: preprocess::Baseline,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let size = [photo.height() as usize, photo.width() as usize];
    let x = image_tensor(preprocess::normalise(photo, preset), size, device);
    let b = image_tensor(preprocess::baseline(baseline, preset, size), size, device);
    (x, b)
}

/// Logits of a single image `[1, C, H, W]`, read back to the host.
pub fn logits(model: &onnx::OnnxModel, x: &Tensor<4>) -> Result<Vec<f32>> {
    onnx::host_values(model.forward(x.clone())?)
}
