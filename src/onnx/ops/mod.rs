//! ONNX operators on Burn tensor ops, one file per op family. [`registry`] dispatches on the
//! ONNX op type; [`operator`] is the vocabulary every family speaks, [`inputs`] and [`padding`]
//! the helpers they share. Attributes are read once at load time.

mod activation;
mod conv;
mod elementwise;
mod expand;
pub mod grad;
mod inputs;
mod linear;
mod logic;
mod norm;
pub mod operator;
mod pad;
mod padding;
mod pool;
mod range;
mod reduce;
mod registry;
mod resize;
mod shape;
mod split;

pub(crate) use conv::is_plain_cpu;
pub use operator::{
    Backward, BoxRule, BuildContext, Epilogue, Fusion, HostConv, Move, OpResult, Operator,
    OrNoGradient, Tangents,
};
pub use registry::{MULTI_OUTPUT, build, supported};
