//! The library's error type: every failure is one readable line naming the problem and the fix.

use thiserror::Error;

/// Everything that can go wrong while loading a model, preparing an image or explaining it.
#[derive(Debug, Error)]
pub enum Error {
    /// The ONNX bytes could not be parsed at all.
    #[error("cannot parse ONNX model: {0} (is this an .onnx file exported with opset 9..=24?)")]
    OnnxParse(String),
    /// An initialiser or constant holds data this runtime cannot read.
    #[error("cannot read ONNX tensor data: {0}")]
    TensorData(String),
    /// The graph uses operators this runtime does not implement: all of them are named.
    #[error(
        "unsupported ONNX {ops}: export the model with standard CNN ops (Conv, BatchNormalization, Relu, pooling, Gemm, ...)"
    )]
    UnsupportedOps {
        /// Each missing op type with its first node, e.g. "op `Einsum` at node `einsum_1`" or
        /// "ops `Einsum` at node `a`, `Trilu` at nodes `b` and 1 more".
        ops: String,
    },
    /// A node is malformed or used in a way the runtime cannot follow.
    #[error("ONNX node `{node}` ({op}): {msg}")]
    BadNode {
        /// ONNX op type.
        op: String,
        /// Node name.
        node: String,
        /// What is wrong.
        msg: String,
    },
    /// The model is not an image classifier with one 4-D input and one logits output.
    #[error(
        "not a CNN classifier: {0}; igcam needs one NCHW image input and one [N, classes] output"
    )]
    NotClassifier(String),
    /// `--layer` named a tensor that the graph does not produce.
    #[error(
        "unknown layer `{name}`: no node outputs a tensor with that name; list candidates with `igcam-wgpu layers MODEL.onnx`{hint}"
    )]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// A close match, if any, formatted as a suggestion.
        hint: String,
    },
    /// The chosen layer is not a 4-D activation map.
    #[error(
        "layer `{name}` is not a 4-D [N, C, H, W] tensor (shape {shape:?}); pick a convolutional layer from `igcam-wgpu layers MODEL.onnx`"
    )]
    LayerNot4d {
        /// Layer name.
        name: String,
        /// Its shape as computed.
        shape: Vec<usize>,
    },
    /// The chosen layer is not on the way to the logits.
    #[error(
        "layer `{name}` does not feed the output `{output}`: the logits do not depend on it, so it cannot be explained; pick another from `igcam-wgpu layers MODEL.onnx`"
    )]
    LayerUnused {
        /// Layer name.
        name: String,
        /// The logits tensor.
        output: String,
    },
    /// The target class index is outside the model's outputs.
    #[error("target class {index} is out of range: the model has {classes} classes (valid: 0 to {})", .classes.saturating_sub(1))]
    TargetOutOfRange {
        /// Requested index.
        index: usize,
        /// Number of model outputs.
        classes: usize,
    },
    /// A target label did not match any class label.
    #[error("unknown target label `{0}`: use a class index or an exact label from the label list")]
    UnknownLabel(String),
    /// A data file (annotation, class map) or a model's tensor layout is malformed.
    #[error("{0}")]
    Data(String),
    /// An option has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The image could not be decoded.
    #[error("cannot decode image: {0} (supported: PNG, JPEG)")]
    Image(String),
    /// A tensor or image would exceed the resource budget (see [`crate::budget`]).
    #[error("{what}: {msg}")]
    Budget {
        /// What would be too large: "model input `x`", "image 1x16384", ...
        what: String,
        /// The size, the limit and the switch that raises it.
        msg: String,
    },
    /// A backend failure (out of memory, lost device, ...).
    #[error("backend error: {0}")]
    Backend(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;
