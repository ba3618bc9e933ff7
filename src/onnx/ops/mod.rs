//! ONNX operators on Burn tensor ops, one file per op family.
//!
//! Each family exposes `build(op_type, node) -> Option<Box<dyn Operator>>`-style constructors;
//! [`build`] dispatches on the ONNX op type. Attributes are read once at load time.

mod activation;
mod conv;
pub(crate) use conv::is_plain_cpu;
mod elementwise;
pub mod grad;
mod linear;
mod norm;
mod pad;
mod pool;
mod reduce;
mod resize;
mod shape;
mod split;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor};
use ndarray::ArrayD;
use onnx_ir::NodeProto;

use super::proto::{Attrs, HostTensor};
use super::value::{FloatValue, Value};
use crate::error::OpError;
use crate::kernels::activation::Activation;

/// What a node can be as the tail of a fused convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    /// An element-wise activation of its single input.
    Activation(Activation),
    /// `Add` of two tensors: one the convolution's output, the other a residual.
    Add,
}

/// What the runner folds into a convolution.
#[derive(Clone, Debug, Default)]
pub struct Fusion {
    /// Extra zero padding `(begin, end)` per spatial axis, from a preceding `Pad`.
    pub pad: [(usize, usize); 2],
    /// A tensor of the output's shape added to the output.
    pub residual: Option<Value>,
    /// The activation applied last.
    pub activation: Option<Activation>,
}

/// What an operator returns; the executor adds the node name and op type to an error.
pub type OpResult<T> = std::result::Result<T, OpError>;

/// `None` as [`OpError::NoGradient`], for the reverse steps.
pub trait OrNoGradient<T> {
    /// The value, or [`OpError::NoGradient`].
    fn or_no_gradient(self) -> OpResult<T>;
}

impl<T> OrNoGradient<T> for Option<T> {
    fn or_no_gradient(self) -> OpResult<T> {
        self.ok_or(OpError::NoGradient)
    }
}

/// One executable node: inputs in ONNX order (absent optional inputs are `None`), one output.
pub trait Operator {
    /// Computes the node's (first) output. An operator may take its inputs out of the slice:
    /// a tensor the graph no longer needs is then owned by the op alone, so the CPU backend can
    /// reuse its buffer in place.
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value>;

    /// Whether the output is an affine function of input `i` (the other inputs being constants):
    /// then along a straight path `b + a (x - b)` it is `f(b) + a (f(x) - f(b))`.
    fn affine_in(&self, _i: usize) -> bool {
        false
    }

    /// Whether the op writes the run's batch over a batch of 1 baked into its target shape
    /// (see [`BuildContext::batch_one_shape`]).
    fn follows_batch(&self) -> bool {
        false
    }

    /// How this op can be folded into the convolution that produces its input.
    fn epilogue(&self) -> Option<Epilogue> {
        None
    }

    /// The spatial zero padding `(begin, end)` per axis this op applies to a 4-D input, when
    /// that is all it does (its inputs as they are now, absent ones `None`).
    fn zero_spatial_pad(&self, _inputs: &[Option<&Value>]) -> Option<[(usize, usize); 2]> {
        None
    }

    /// Whether [`Operator::run_fused`] can run on `input` with `pad` added and `residual`.
    fn fusable(
        &self,
        _input: &Value,
        _pad: [(usize, usize); 2],
        _residual: Option<&Value>,
    ) -> bool {
        false
    }

    /// Runs with `fusion` folded in; called only where [`Operator::fusable`] said yes.
    fn run_fused(&self, inputs: &mut [Option<Value>], _fusion: Fusion) -> OpResult<Value> {
        self.run(inputs)
    }

    /// The gradient with respect to each input (`None` where none flows: constants, shapes),
    /// from the forward pass's values and the gradient of the output, for the host reverse
    /// pass (`onnx::backprop`). [`OpError::NoGradient`]: this op, with these inputs, has no
    /// host gradient, and the caller uses Burn's autodiff instead.
    fn backward(&self, _step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        Err(OpError::NoGradient)
    }
}

/// What [`Operator::backward`] reads: the forward pass's values and the output's gradient.
pub struct Backward<'a> {
    /// The inputs in ONNX order, as the op ran on them (absent optional inputs are `None`).
    pub inputs: &'a [Option<&'a Value>],
    /// The op's output.
    pub output: &'a Value,
    /// Whether a gradient is wanted for each input (it depends on the graph's input). An op
    /// that cannot give one that is wanted returns `None`.
    pub wanted: &'a [bool],
    /// The gradient of the output (its logical shape).
    pub grad: FloatValue,
    /// Zero padding `(begin, end)` per spatial axis fused in front of a convolution.
    pub pad: [(usize, usize); 2],
    /// An activation fused after a convolution and its output: `grad` is the activation's
    /// output gradient, and the convolution takes it through the activation first.
    pub gate: Option<(Activation, &'a FloatValue)>,
}

impl Backward<'_> {
    /// Input `i` as a float tensor, if it is one.
    pub fn float(&self, i: usize) -> Option<&FloatValue> {
        match self.inputs.get(i).copied().flatten() {
            Some(Value::Float(f)) => Some(f),
            _ => None,
        }
    }

    /// Whether input `i` wants a gradient.
    pub fn wants(&self, i: usize) -> bool {
        self.wanted.get(i).copied().unwrap_or(false)
    }

    /// Whether only input 0 wants a gradient (weights, shapes and bounds being constants).
    pub fn only_first(&self) -> bool {
        self.wanted.iter().skip(1).all(|w| !w)
    }
}

/// The gradient `grad` (of an output broadcast from `shape`) summed back to `shape`; no host
/// gradient at rank 5.
pub fn unbroadcast(grad: &FloatValue, shape: &[usize]) -> OpResult<FloatValue> {
    if grad.rank == super::value::MAX_LOGICAL_RANK || shape.len() == super::value::MAX_LOGICAL_RANK
    {
        return Err(OpError::NoGradient);
    }
    let want = super::value::stored_shape(shape)?;
    let mut t = grad.tensor.clone();
    for (axis, (&w, have)) in want.iter().zip(t.dims()).enumerate() {
        if w == 1 && have != 1 {
            t = t.sum_dim(axis);
        }
    }
    if t.dims() != want {
        return Err(OpError::Shape(format!(
            "a gradient of shape {:?} does not sum back to {shape:?}",
            grad.shape()
        )));
    }
    Ok(FloatValue::new(t, shape))
}

/// What an operator may look at while it is being built.
pub struct BuildContext<'a> {
    /// The node being built.
    pub node: &'a NodeProto,
    /// The model's default-domain opset.
    pub opset: i64,
    /// Initialisers and constants known at load time, still on the host.
    pub constants: &'a HashMap<String, HostTensor>,
    /// Device that holds the model's tensors.
    pub device: &'a Device,
    /// Which of the node's outputs the operator computes (0 except for [`MULTI_OUTPUT`] ops).
    pub output: usize,
    /// Whether the model's input declares a batch of exactly 1 (an export without a dynamic
    /// batch axis): Reshapes to a constant `[1, ...]` then follow the run's batch.
    pub fixed_batch: bool,
}

impl<'a> BuildContext<'a> {
    /// The node's attributes.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs::of(self.node)
    }

    /// Whether input `i` is a constant target shape that starts with the batch 1 of a
    /// [`BuildContext::fixed_batch`] model (`[1, 512]`, `[1, 2, 24, 28, 28]`).
    pub fn batch_one_shape(&self, i: usize) -> bool {
        let spec = self
            .node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| self.constants.get(n));
        self.fixed_batch
            && matches!(spec, Some(HostTensor::Int(a)) if a.ndim() == 1 && a.len() >= 2 && a[[0]] == 1)
    }

    /// The load-time values of input `i` as floats, if it is an initialiser or constant.
    pub fn constant_input(&self, i: usize) -> Option<Vec<f32>> {
        self.node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| self.constants.get(n))
            .map(HostTensor::floats)
    }
}

/// Builds one node's operator from its attributes and constant inputs.
type Builder = fn(&BuildContext) -> OpResult<Box<dyn Operator>>;

/// Every supported ONNX op type and the builder of its family: adding an op is one builder
/// and one line here (`Constant` is folded by the graph loader and is not listed). The README's
/// operator list is checked against this table by a test.
const REGISTRY: &[(&str, Builder)] = &[
    ("Conv", conv::build),
    ("BatchNormalization", norm::build),
    ("LayerNormalization", norm::build),
    ("InstanceNormalization", norm::build),
    ("MaxPool", pool::build),
    ("AveragePool", pool::build),
    ("GlobalAveragePool", pool::build),
    ("GlobalMaxPool", pool::build),
    ("Gemm", linear::build),
    ("MatMul", linear::build),
    ("Add", elementwise::build),
    ("Sub", elementwise::build),
    ("Mul", elementwise::build),
    ("Div", elementwise::build),
    ("Pad", pad::build),
    ("Relu", activation::build),
    ("Clip", activation::build),
    ("Sigmoid", activation::build),
    ("Tanh", activation::build),
    ("LeakyRelu", activation::build),
    ("HardSigmoid", activation::build),
    ("HardSwish", activation::build),
    ("Erf", activation::build),
    ("Gelu", activation::build),
    ("Sqrt", activation::build),
    ("Pow", activation::build),
    ("Softmax", activation::build),
    ("Identity", activation::build),
    ("Dropout", activation::build),
    ("Shape", shape::build),
    ("Gather", shape::build),
    ("Unsqueeze", shape::build),
    ("Squeeze", shape::build),
    ("Concat", shape::build),
    ("Reshape", shape::build),
    ("Flatten", shape::build),
    ("ConstantOfShape", shape::build),
    ("Slice", shape::build),
    ("Transpose", shape::build),
    ("Cast", shape::build),
    ("ReduceMean", reduce::build),
    ("ReduceSum", reduce::build),
    ("ReduceMax", reduce::build),
    ("Split", split::build),
    ("Resize", resize::build),
    ("Upsample", resize::build),
];

/// Op types whose every output is computed (by one operator each); other ops compute their
/// first output only (MaxPool's indices, Dropout's mask and the like are not read by CNNs).
pub const MULTI_OUTPUT: &[&str] = &["Split"];

/// The op types [`build`] supports, in registry order.
pub fn supported() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|&(op, _)| op)
}

/// Builds the operator for a node, `Ok(None)` when the op type is not supported.
pub fn build(ctx: &BuildContext) -> OpResult<Option<Box<dyn Operator>>> {
    REGISTRY
        .iter()
        .find(|&&(op, _)| op == ctx.node.op_type)
        .map(|(_, builder)| builder(ctx))
        .transpose()
}

/// The float tensor at input `i`.
pub fn float_input(inputs: &[Option<Value>], i: usize) -> OpResult<FloatValue> {
    float_of(inputs.get(i).cloned().flatten(), i)
}

/// Takes the float tensor at input `i` out of `inputs` (no reference to it stays behind).
pub fn take_float(inputs: &mut [Option<Value>], i: usize) -> OpResult<FloatValue> {
    float_of(inputs.get_mut(i).and_then(Option::take), i)
}

/// Input `i`, present and a float tensor.
fn float_of(value: Option<Value>, i: usize) -> OpResult<FloatValue> {
    match value {
        Some(Value::Float(f)) if f.tensor.dims().contains(&0) => Err(empty(i, &f.shape())),
        Some(Value::Float(f)) => Ok(f),
        Some(Value::Int(_)) => Err(OpError::Type(format!(
            "input {i} is an integer tensor where a float tensor is expected"
        ))),
        None => Err(missing(i)),
    }
}

/// Input `i` is an empty tensor: Burn's ops do not take them, and no CNN computes one.
pub fn empty(i: usize, shape: &[usize]) -> OpError {
    OpError::Unsupported(format!(
        "input {i} is an empty tensor (shape {shape:?}); empty tensors are not supported"
    ))
}

/// Input `i` is absent.
pub fn missing(i: usize) -> OpError {
    OpError::Graph(format!("input {i} is missing"))
}

/// Takes the 4-D NCHW tensor at input `i` out of `inputs`.
pub fn take_nchw(inputs: &mut [Option<Value>], i: usize) -> OpResult<Tensor<4>> {
    let v = take_float(inputs, i)?;
    if v.rank != 4 {
        return Err(OpError::Shape(format!(
            "input {i} must be 4-D NCHW, got shape {:?}",
            v.shape()
        )));
    }
    Ok(v.tensor)
}

/// The host integer tensor at input `i`.
pub fn int_input(inputs: &[Option<Value>], i: usize) -> OpResult<ArrayD<i64>> {
    match inputs.get(i) {
        Some(Some(Value::Int(a))) => Ok(a.clone()),
        Some(Some(Value::Float(_))) => Err(OpError::Type(format!(
            "input {i} is computed on the device where shape data (integers) is expected"
        ))),
        _ => Err(missing(i)),
    }
}

/// Integer list from an optional input, or `None` when the input is absent.
pub fn optional_ints(inputs: &[Option<Value>], i: usize) -> OpResult<Option<Vec<i64>>> {
    match inputs.get(i) {
        Some(Some(_)) => Ok(Some(int_input(inputs, i)?.iter().copied().collect())),
        _ => Ok(None),
    }
}

/// Splits ONNX `pads` ([begin..., end...]) into per-axis (begin, end) pairs.
pub fn pad_pairs<const N: usize>(pads: &[i64]) -> OpResult<[(usize, usize); N]> {
    if pads.len() != 2 * N || pads.iter().any(|&p| p < 0) {
        return Err(OpError::Attribute(format!(
            "pads {pads:?} must hold {} non-negative values",
            2 * N
        )));
    }
    Ok(std::array::from_fn(|i| {
        (pads[i] as usize, pads[i + N] as usize)
    }))
}

/// Reads a 2-element spatial attribute (kernel, strides, dilations) with a default.
pub fn spatial2(values: Option<Vec<i64>>, default: usize, what: &str) -> OpResult<[usize; 2]> {
    match values {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(OpError::Attribute(format!(
            "{what} {v:?} must be two positive values (only 2-D ops are supported)"
        ))),
    }
}

/// Padding for `auto_pad` SAME_UPPER / SAME_LOWER, per spatial axis, from the input size.
pub fn same_padding(
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    lower: bool,
) -> [(usize, usize); 2] {
    std::array::from_fn(|i| {
        let out = input[i].div_ceil(stride[i].max(1));
        let effective = kernel[i].saturating_sub(1).saturating_mul(dilation[i]) + 1;
        let total = out
            .saturating_sub(1)
            .saturating_mul(stride[i])
            .saturating_add(effective)
            .saturating_sub(input[i]);
        let small = total / 2;
        if lower {
            (total - small, small)
        } else {
            (small, total - small)
        }
    })
}

/// How a node pads its spatial axes.
#[derive(Clone, Debug)]
pub enum Padding {
    /// Explicit (begin, end) per axis.
    Explicit([(usize, usize); 2]),
    /// `SAME_UPPER` (`lower = false`) or `SAME_LOWER`, resolved at run time.
    Same {
        /// Extra padding goes at the beginning.
        lower: bool,
    },
}

impl Padding {
    /// Reads `auto_pad` and `pads`.
    pub fn from_attrs(attrs: &Attrs) -> OpResult<Self> {
        match attrs.string("auto_pad").as_deref() {
            Some("SAME_UPPER") => Ok(Padding::Same { lower: false }),
            Some("SAME_LOWER") => Ok(Padding::Same { lower: true }),
            Some("NOTSET") | Some("VALID") | Some("") | None => {
                let pads = attrs.ints("pads").unwrap_or_else(|| vec![0; 4]);
                Ok(Padding::Explicit(pad_pairs::<2>(&pads)?))
            }
            Some(other) => Err(OpError::Attribute(format!("unknown auto_pad `{other}`"))),
        }
    }

    /// Resolves to explicit pairs for an input of spatial size `input`.
    pub fn resolve(
        &self,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> [(usize, usize); 2] {
        match self {
            Padding::Explicit(p) => *p,
            Padding::Same { lower } => same_padding(input, kernel, stride, dilation, *lower),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_at_the_end_for_upper() {
        // 7 wide, kernel 4, stride 2: out 4, total pad (4-1)*2+4-7 = 3.
        assert_eq!(
            same_padding([7, 7], [4, 4], [2, 2], [1, 1], false),
            [(1, 2), (1, 2)]
        );
        assert_eq!(
            same_padding([7, 7], [4, 4], [2, 2], [1, 1], true),
            [(2, 1), (2, 1)]
        );
        assert_eq!(
            same_padding([8, 8], [1, 1], [2, 2], [1, 1], false),
            [(0, 0), (0, 0)]
        );
    }

    #[test]
    fn pads_are_split_begin_then_end() {
        assert_eq!(pad_pairs::<2>(&[1, 2, 3, 4]).unwrap(), [(1, 3), (2, 4)]);
        assert!(pad_pairs::<2>(&[1, 2, 3]).is_err());
        assert!(pad_pairs::<2>(&[1, -2, 3, 4]).is_err());
    }
}
