//! The library's error types: every failure is one readable line naming the problem and the
//! fix. [`Error`] is what the library returns; [`OpError`] is what an ONNX operator returns
//! (the interpreter adds the node); a [`Message`] names the [`Setting`]s to change, which each
//! front end words its own way ([`Spelling`]: `--steps` in the CLI, Steps in the page).

use std::fmt;

use thiserror::Error;

use crate::budget::Exceeded;

/// A setting of the library that an error can tell the user to change. The library names it
/// by [`Setting::name`]; a front end spells it its own way ([`Error::render`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// Path steps `m`.
    Steps,
    /// Path points per chunk.
    Batch,
    /// Allow more steps than the safety limit.
    Force,
    /// The explained layer.
    Layer,
    /// The list of explainable layers (`igcam-wgpu layers MODEL.onnx` in the CLI).
    LayerList,
    /// The classes to explain.
    Target,
    /// The largest image accepted, in pixels.
    MaxPixels,
    /// Resize the whole photo instead of resize + centre crop.
    NoCrop,
    /// Explain a truncated JPEG anyway.
    Lenient,
    /// The noise tunnel's number of noisy samples.
    NtSamples,
    /// The noise tunnel's standard deviation.
    NtStdev,
    /// The metrics `eval` computes.
    Metrics,
    /// What the model does (classify, segment, detect, or auto).
    Task,
    /// A detector's confidence threshold.
    Conf,
    /// A detector's NMS IoU threshold.
    Iou,
    /// The most detections a detector keeps.
    MaxDet,
}

impl Setting {
    /// The library's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Steps => "steps",
            Setting::Batch => "batch",
            Setting::Force => "force",
            Setting::Layer => "layer",
            Setting::LayerList => "OnnxModel::layers()",
            Setting::Target => "target",
            Setting::MaxPixels => "max_pixels",
            Setting::NoCrop => "no_crop",
            Setting::Lenient => "lenient",
            Setting::NtSamples => "noise_tunnel.samples",
            Setting::NtStdev => "noise_tunnel.stdev",
            Setting::Metrics => "metrics",
            Setting::Task => "task",
            Setting::Conf => "conf",
            Setting::Iou => "iou",
            Setting::MaxDet => "max_det",
        }
    }
}

/// How a front end words the settings an error names: the CLI says `--steps` and "pass
/// --force", the page "Steps" and "tick Force".
pub trait Spelling {
    /// The setting's name.
    fn name(&self, setting: Setting) -> String;

    /// An instruction to set (or turn on) the setting.
    fn set(&self, setting: Setting) -> String {
        format!("set {}", self.name(setting))
    }
}

/// The library's own spelling: the setting's name in backticks.
pub struct LibrarySpelling;

impl Spelling for LibrarySpelling {
    fn name(&self, setting: Setting) -> String {
        format!("`{}`", setting.name())
    }
}

/// One piece of a [`Message`].
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    /// The setting's name.
    Name(Setting),
    /// An instruction to set it.
    Set(Setting),
}

/// An error text that may name settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message(Vec<Part>);

impl Message {
    /// A message starting with `setting`'s name.
    pub fn setting(setting: Setting) -> Self {
        Self(vec![Part::Name(setting)])
    }

    /// The message followed by `text`.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Part::Text(text.into()));
        self
    }

    /// The message followed by `setting`'s name.
    pub fn then(mut self, setting: Setting) -> Self {
        self.0.push(Part::Name(setting));
        self
    }

    /// The message followed by an instruction to set `setting`.
    pub fn set(mut self, setting: Setting) -> Self {
        self.0.push(Part::Set(setting));
        self
    }

    /// The text, with each setting worded by `spelling`.
    pub fn render(&self, spelling: &dyn Spelling) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Name(s) => spelling.name(*s),
                Part::Set(s) => spelling.set(*s),
            })
            .collect()
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self(vec![Part::Text(text)])
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::from(text.to_string())
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&LibrarySpelling))
    }
}

/// A tensor's data cannot be read (a malformed initialiser, a missing external file): the
/// text names the tensor and the fix.
#[derive(Clone, Debug, Error, PartialEq)]
#[error("{0}")]
pub struct TensorDataError(pub String);

/// What an ONNX operator reports; the interpreter wraps it with the node in
/// [`Error::BadNode`].
#[derive(Clone, Debug, Error, PartialEq)]
pub enum OpError {
    /// The inputs' shapes (or ranks, or axes) do not fit the op.
    #[error("{0}")]
    Shape(String),
    /// An input has the wrong element type (integers where floats are expected, or the
    /// reverse).
    #[error("{0}")]
    Type(String),
    /// An attribute is missing or has a value the op cannot take.
    #[error("{0}")]
    Attribute(String),
    /// Valid ONNX this runtime does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// Tensor data that cannot be used (an index out of range, a malformed constant).
    #[error("{0}")]
    Data(String),
    /// A constant whose data cannot be read.
    #[error(transparent)]
    TensorData(#[from] TensorDataError),
    /// A malformed graph: a tensor with no producer, two producers, or a node with no output.
    #[error("{0}")]
    Graph(String),
    /// A tensor or an op's work would exceed the resource budget.
    #[error(transparent)]
    Budget(#[from] Exceeded),
    /// The backend refused (a tensor not on the CPU backend where the host kernels need it).
    #[error("{0}")]
    Backend(String),
    /// The op has no host gradient for these inputs: the reverse pass is not applicable, and the
    /// caller uses Burn's autodiff instead. Never shown to a user.
    #[error("the op has no host gradient for these inputs")]
    NoGradient,
    /// The op has no second-order rule (forward tangent and curvature) for these inputs, which
    /// a Hessian-vector product (ShapleyCAM) needs.
    #[error("the op has no second-order rule for these inputs")]
    NoSecondOrder,
}

/// Everything that can go wrong while loading a model, preparing an image or explaining it.
#[derive(Debug, Error)]
pub enum Error {
    /// The ONNX bytes could not be parsed at all.
    #[error("cannot parse ONNX model: {0} (is this an .onnx file exported with opset 9..=24?)")]
    OnnxParse(String),
    /// An initialiser or constant holds data this runtime cannot read.
    #[error("cannot read ONNX tensor data: {0}")]
    TensorData(TensorDataError),
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
    #[error("ONNX node `{node}` ({op}): {error}")]
    BadNode {
        /// ONNX op type.
        op: String,
        /// Node name.
        node: String,
        /// What is wrong.
        error: OpError,
    },
    /// The model is neither an image classifier nor a segmenter with one 4-D input.
    #[error(
        "not an image classifier, segmenter or detector: {0}; igcam needs one NCHW image input and one [N, classes] output (a classifier), [N, classes, H, W] (a segmenter) or [N, 4 + classes, anchors] or [N, anchors, 5 + classes] (a YOLO detector without NMS)"
    )]
    NotClassifier(String),
    /// A detector export whose head igcam cannot read (an oriented-box head, a pose or
    /// instance-segmentation head without its class names).
    #[error("{0}")]
    UnsupportedHead(String),
    /// The layer asked for is a tensor that the graph does not produce.
    #[error(
        "unknown layer `{name}`: no node outputs a tensor with that name; list candidates with {list}{hint}",
        list = LibrarySpelling.name(Setting::LayerList)
    )]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// A close match, if any, formatted as a suggestion.
        hint: String,
    },
    /// The chosen layer is not a 4-D activation map.
    #[error(
        "layer `{name}` is not a 4-D [N, C, H, W] tensor (shape {shape:?}); pick a convolutional layer from {list}",
        list = LibrarySpelling.name(Setting::LayerList)
    )]
    LayerNot4d {
        /// Layer name.
        name: String,
        /// Its shape as computed.
        shape: Vec<usize>,
    },
    /// The chosen layer is not on the way to the logits.
    #[error(
        "layer `{name}` does not feed the output `{output}`: the logits do not depend on it, so it cannot be explained; pick another from {list}",
        list = LibrarySpelling.name(Setting::LayerList)
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
    /// A setting has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(Message),
    /// The image could not be decoded.
    #[error("cannot decode image: {0} (supported: PNG, JPEG)")]
    Image(Message),
    /// A tensor or image would exceed the resource budget (see [`crate::budget`]).
    #[error("{what}: {msg}")]
    Budget {
        /// What would be too large: "model input `x`", "image 1x16384", ...
        what: String,
        /// The size, the limit and the setting that raises it.
        msg: Message,
    },
    /// A backend failure (out of memory, lost device, ...).
    #[error("backend error: {0}")]
    Backend(String),
    /// A method that cannot run on this model or device: the text says why and what to do.
    #[error("{0}")]
    MethodUnavailable(String),
    /// The caller stopped the request between chunks ([`crate::Explainer::explain_or_stop`]).
    #[error("stopped by the caller before the request finished")]
    Stopped,
    /// A bug in igcam, not in the input: the text says what broke.
    #[error("internal error: {0} (please report it)")]
    Internal(String),
}

impl Error {
    /// The error's text with each setting it names worded by `spelling`: a front end passes
    /// its own (`--steps`, "the Steps slider"); [`Display`](fmt::Display) uses the library's
    /// ([`LibrarySpelling`]: `` `steps` ``).
    pub fn render(&self, spelling: &dyn Spelling) -> String {
        let list = || spelling.name(Setting::LayerList);
        match self {
            Error::InvalidOption(m) => format!("invalid option: {}", m.render(spelling)),
            Error::Image(m) => format!(
                "cannot decode image: {} (supported: PNG, JPEG)",
                m.render(spelling)
            ),
            Error::Budget { what, msg } => format!("{what}: {}", msg.render(spelling)),
            Error::UnknownLayer { name, hint } => format!(
                "unknown layer `{name}`: no node outputs a tensor with that name; list candidates with {}{hint}",
                list()
            ),
            Error::LayerNot4d { name, shape } => format!(
                "layer `{name}` is neither a 4-D [N, C, H, W] tensor nor transformer tokens [N, tokens, C] with a patch grid (shape {shape:?}); pick a layer from {}",
                list()
            ),
            Error::LayerUnused { name, output } => format!(
                "layer `{name}` does not feed the output `{output}`: the logits do not depend on it, so it cannot be explained; pick another from {}",
                list()
            ),
            other => other.to_string(),
        }
    }
}

impl From<TensorDataError> for Error {
    fn from(e: TensorDataError) -> Self {
        Error::TensorData(e)
    }
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;
