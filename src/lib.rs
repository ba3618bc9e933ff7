//! # igcam
//!
//! Integrated Grad-CAM (Sattarzadeh et al., ICASSP 2021) and related explanation methods for
//! any ONNX convolutional classifier, on Burn: wgpu (Vulkan, Metal, DX12, WebGPU) or the CPU.
//!
//! The core reads no files, spawns no threads and looks at no clock: bytes in, maps out.
//!
//! ```no_run
//! use burn::tensor::{Device, Tensor, TensorData};
//! use igcam::{cam, onnx::OnnxModel, preprocess};
//!
//! # fn main() -> igcam::Result<()> {
//! let device = Device::flex();
//! let model = OnnxModel::from_bytes(&std::fs::read("model.onnx").unwrap(), &device)?;
//! let size = model.input_size();
//! let photo = preprocess::fit(&preprocess::decode(&std::fs::read("cat.png").unwrap())?, size, true);
//! let x = igcam::image_tensor(preprocess::normalise(&photo, preprocess::Preset::Imagenet), size, &device);
//! let b = igcam::image_tensor(preprocess::baseline(Default::default(), Default::default(), size), size, &device);
//! let logits = igcam::logits(&model, &x)?;
//! let target = igcam::labels::resolve_target("top1", &logits, &[])?;
//! let layer = model.default_layer().unwrap();
//! let alphas = cam::path_alphas(cam::Method::IgCam, false, 50)?;
//! let run = cam::PathRun { model: &model, input: &x, baseline: &b, target, alphas: &alphas, batch: 10 };
//! let map = cam::explain(&run, cam::Method::IgCam, &layer, &mut |_, _| {})?;
//! println!("{}x{} map", map.height, map.width);
//! # Ok(()) }
//! ```

pub mod cam;
pub mod data;
mod error;
pub mod labels;
pub mod metrics;
pub mod onnx;
pub mod preprocess;
pub mod render;

use burn::tensor::{Device, Tensor, TensorData};

pub use error::{Error, Result};

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
