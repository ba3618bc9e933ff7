//! Run-time ONNX on Burn, one-way in layers: [`load`] parses bytes into a [`graph`] of built
//! [`ops`]; [`fusion`] plans which convolutions absorb their neighbours; [`exec`] runs the
//! graph; [`backprop`] walks a run backwards for input gradients; [`layers`] and [`path`] pick
//! the explained layer and the path; [`OnnxModel`] (in [`model`]) is the one door the rest of
//! the crate uses. The CPU kernels live in [`kernels`](crate::kernels).

mod attention;
mod backprop;
mod boxed;
mod chain;
mod exec;
pub mod external;
mod fusion;
mod graph;
mod hessian;
mod host;
mod layer_gradient;
mod layers;
mod load;
pub mod metadata;
mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod model_folder;
pub mod objective;
mod ops;
mod path;
pub mod profile;
mod proto;
pub mod randomise;
mod rewrite;
mod tokens;
mod value;

/// Threads igcam's CPU kernels use: rayon's pool natively and in the browser's threaded build,
/// 1 in the single-threaded browser build.
pub use crate::kernels::par::threads as cpu_threads;
pub use graph::{Env, InputSpec};
pub use layer_gradient::LayerGradient;
pub use layers::LayerInfo;
pub use load::DEFAULT_INPUT_SIZE;
pub use model::{BiasGradients, OnnxModel, run_graph};
pub use ops::supported as supported_ops;
pub use path::PathEnds;
pub use value::{FloatValue, Value, host_values};

/// Whether `device` is Burn's plain CPU backend, where igcam's host kernels (and its own
/// reverse passes) run.
pub fn on_plain_cpu(device: &burn::tensor::Device) -> bool {
    ops::is_plain_cpu(device)
}
