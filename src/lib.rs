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

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod budget;
pub mod cam;
pub mod data;
pub mod dedup;
pub mod error;
pub mod explainer;
#[cfg(feature = "bench-kernels")]
pub mod kernels;
#[cfg(not(feature = "bench-kernels"))]
pub(crate) mod kernels;
pub mod labels;
pub mod metrics;
pub mod onnx;
pub mod preprocess;
pub mod reexplain;
pub mod render;
pub mod resample;
pub mod scoring;
pub mod task;

pub use error::{Error, Result};
pub use explainer::{Explainer, ExplainerOptions, Explanation, Prepared, Preparing, Request};
/// Which instruction set the CPU kernels run with (picked at run time; a front end may cap it).
pub use kernels::isa;
/// The forward convolutions' multiply-adds, for achieved GFLOP/s in profiles.
pub use kernels::work;
