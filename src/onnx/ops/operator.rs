//! The interpreter's vocabulary for an operator: what it is given when it is built
//! ([`BuildContext`]), what it runs on, what it returns ([`OpResult`]), what the runner may fold
//! into it ([`Fusion`], [`Epilogue`]) and what its reverse step reads ([`Backward`]).

use std::collections::HashMap;

use std::ops::Range;

use burn::tensor::{Device, Tensor};
use onnx_ir::NodeProto;

use crate::error::OpError;
use crate::kernels::activation::Activation;
use crate::kernels::shape::ConvShape;
use crate::onnx::host;
use crate::onnx::proto::{Attrs, HostTensor};
use crate::onnx::value::{FloatValue, Value};

/// What a node can be as the tail of a fused convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    /// An element-wise activation of its single input.
    Activation(Activation),
    /// `Add` of two tensors: one the convolution's output, the other a residual.
    Add,
}

/// A convolution as the host kernels take it ([`Operator::host_conv`]).
#[derive(Clone, Copy, Debug)]
pub struct HostConv<'a> {
    /// Its shape, the padding folded in.
    pub s: ConvShape,
    /// The weights, `[cout, cin / groups, kh, kw]` row-major.
    pub weights: &'a [f32],
    /// The per-channel bias.
    pub bias: Option<&'a [f32]>,
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
/// Operators are `Send + Sync`, so a loaded model can be shared between threads (the Python
/// binding hands one explainer to every thread that calls it).
pub trait Operator: Send + Sync {
    /// Computes the node's (first) output. An operator may take its inputs out of the slice:
    /// a tensor the graph no longer needs is then owned by the op alone, so the CPU backend can
    /// reuse its buffer in place.
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value>;

    /// Whether the output is an affine function of input `i` (the other inputs being constants):
    /// then along a straight path `b + a (x - b)` it is `f(b) + a (f(x) - f(b))` (the path's
    /// affine stem), and its tangent and curvature come from its own forward and reverse steps
    /// (Hessian-vector products, `onnx::hessian`).
    fn affine_in(&self, _i: usize) -> bool {
        false
    }

    /// Whether the op writes the run's batch over a batch of 1 baked into its target shape
    /// (see [`BuildContext::batch_one_shape`]).
    fn follows_batch(&self) -> bool {
        false
    }

    /// The axis of a `Softmax` (attention's, run with its products as one kernel where it is
    /// the last: `onnx::attention`).
    fn softmax_axis(&self) -> Option<i64> {
        None
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

    /// A convolution's shape for a 4-D input of `x`'s dims with `pad` added, and its weights
    /// and bias, where it runs on the host kernels: for a chain of convolutions run as one
    /// kernel ([`fusion::bottleneck`](crate::onnx::fusion::bottleneck)).
    fn host_conv(&self, _x: [usize; 4], _pad: [(usize, usize); 2]) -> Option<HostConv<'_>> {
        None
    }

    /// Runs with `fusion` folded in; called only where [`Operator::fusable`] said yes.
    fn run_fused(&self, inputs: &mut [Option<Value>], _fusion: Fusion) -> OpResult<Value> {
        self.run(inputs)
    }

    /// The bias this op adds to each channel of its 4-D output, where it is a convolution or a
    /// batch normalisation with one (`beta - mean * gamma / sqrt(var + eps)`): the biases
    /// FullGrad weighs with their gradients.
    fn channel_bias(&self) -> Option<Vec<f32>> {
        None
    }

    /// The gradient with respect to each input (`None` where none flows: constants, shapes),
    /// from the forward pass's values and the gradient of the output, for the host reverse
    /// pass (`onnx::backprop`). [`OpError::NoGradient`]: this op, with these inputs, has no
    /// host gradient, and the caller uses Burn's autodiff instead.
    fn backward(&self, _step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        Err(OpError::NoGradient)
    }

    /// How the reverse step treats an output gradient that is zero outside a box (one
    /// detection's score reaches the head only through its receptive field): see
    /// [`BoxRule`] and `onnx::boxed`. [`BoxRule::Dense`] (the default) makes it whole first.
    fn box_rule(&self, _inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        Ok(BoxRule::Dense)
    }

    /// For [`BoxRule::Conv`]: input 0's gradient from the output gradient `step.grad` over
    /// the output rows and columns `at` (every channel, one image), as the values over the
    /// input rows and columns it returns beside them; `Ok(None)` where that is all zeros.
    fn box_input_grad(
        &self,
        _step: Backward,
        _at: [Range<usize>; 2],
    ) -> OpResult<Option<(FloatValue, [Range<usize>; 2])>> {
        Err(OpError::NoGradient)
    }

    /// Forward mode, for an op not [affine](Operator::affine_in) in every input that carries a
    /// tangent: the output's derivative along the inputs' tangents, `J ẋ` (the Hessian-vector
    /// product's forward pass, `onnx::hessian`). [`OpError::NoSecondOrder`] where the op has
    /// no such rule.
    fn tangent(&self, _step: &Tangents) -> OpResult<FloatValue> {
        Err(OpError::NoSecondOrder)
    }

    /// For the same ops, the reverse step's own derivative along the inputs' tangents, with the
    /// output's gradient `grad` held fixed: `d/dt backward(x + t ẋ; grad)` at `t = 0`, per
    /// input (`None` where it is zero, as through a ReLU or a max pooling). The reverse pass of
    /// the tangents adds it to the reverse step of the gradient's tangent.
    fn curvature(&self, _step: &Tangents, _grad: &FloatValue) -> OpResult<Vec<Option<FloatValue>>> {
        Err(OpError::NoSecondOrder)
    }
}

/// One box an op copies from an input into its output: a range per logical axis of each,
/// of the same sizes.
pub struct Move {
    /// The input.
    pub input: usize,
    /// Where the values are in the input.
    pub from: Vec<Range<usize>>,
    /// Where they go in the output.
    pub to: Vec<Range<usize>>,
}

/// How an op's reverse step carries a gradient that is zero outside a box of its output.
pub enum BoxRule {
    /// It does not: the gradient is made whole first.
    Dense,
    /// Each output value is computed from the inputs' values at the same place (after
    /// broadcasting): the reverse step runs on the box's values alone.
    Pointwise,
    /// The output is input 0's values in another shape (`Reshape`, `Flatten`, `Squeeze`,
    /// `Unsqueeze`).
    Relabel,
    /// The output copies boxes of the inputs (`Concat`, `Slice`, `Split`).
    Moves(Vec<Move>),
    /// A convolution: [`Operator::box_input_grad`].
    Conv,
}

/// What [`Operator::tangent`] and [`Operator::curvature`] read: the forward pass's values and
/// each input's tangent.
pub struct Tangents<'a> {
    /// The inputs in ONNX order, as the op ran on them (absent optional inputs are `None`).
    pub inputs: &'a [Option<&'a Value>],
    /// The op's output.
    pub output: &'a Value,
    /// Each input's tangent, `None` where it is zero (constants, shapes, values the explained
    /// layer does not reach).
    pub tangents: &'a [Option<&'a FloatValue>],
}

impl<'a> Tangents<'a> {
    /// The reverse step's view of the same values, with `grad` as the output's gradient and a
    /// gradient wanted for input 0 only (an element-wise op's).
    pub fn reverse(&self, grad: FloatValue) -> Backward<'a> {
        Backward {
            inputs: self.inputs,
            output: self.output,
            wanted: &[true],
            grad,
            pad: [(0, 0); 2],
            gate: None,
        }
    }

    /// Input 0's tangent, the only one an element-wise op or a pooling may have.
    pub fn only_first(&self) -> OpResult<&'a FloatValue> {
        match self.tangents {
            [Some(t), rest @ ..] if rest.iter().all(Option::is_none) => Ok(t),
            _ => Err(OpError::NoSecondOrder),
        }
    }

    /// The output as a float tensor.
    pub fn float_output(&self) -> OpResult<&'a FloatValue> {
        match self.output {
            Value::Float(f) => Ok(f),
            Value::Int(_) => Err(OpError::NoSecondOrder),
        }
    }
}

/// What [`Operator::backward`] reads: the forward pass's values and the output's gradient.
pub struct Backward<'a> {
    /// The inputs in ONNX order, as the op ran on them (absent optional inputs are `None`).
    pub inputs: &'a [Option<&'a Value>],
    /// The op's output.
    pub output: &'a Value,
    /// Whether a gradient is wanted for each input (it depends on the graph's input). An op
    /// that cannot give one that is wanted fails with [`OpError::NoGradient`] (the pass then
    /// goes to autodiff); `None` for a wanted input means its gradient is zero.
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

    /// `part` of the output's gradient as an input's, or `None` where it is all zeros: a
    /// concatenation's or a split's part that a sparse seed does not reach (a detection's
    /// box rows, the other scales), whose reverse pass would only carry zeros.
    pub fn unless_zero(x: &FloatValue, part: Tensor<4>) -> Option<FloatValue> {
        (!all_zero(&part)).then(|| x.with_tensor(part))
    }

    /// The output's gradient placed in `ranges` (one per logical axis of `x`) of zeros shaped
    /// like the input `x`, at any rank (in the 6-D view, where no axis is merged): a slice's
    /// or a split part's input gradient; `None` where it is all zeros (see
    /// [`Backward::unless_zero`]).
    pub fn placed(&self, x: &FloatValue, ranges: &[Range<usize>]) -> Option<FloatValue> {
        use crate::onnx::value::MAX_LOGICAL_RANK;
        assert_eq!(
            ranges.len(),
            x.rank,
            "a window of {} axes for a rank-{} tensor",
            ranges.len(),
            x.rank
        );
        if all_zero(&self.grad.tensor) {
            return None;
        }
        let (shape, block) = (x.shape(), self.grad.shape());
        let fits = block.len() == ranges.len()
            && (ranges.iter().zip(&block).zip(&shape))
                .all(|((r, &b), &d)| r.len() == b && r.end <= d);
        // On the CPU backend (elsewhere the gradient's values are not on the host).
        if fits {
            let start: Vec<usize> = ranges.iter().map(|r| r.start).collect();
            let values = host::with_floats(&self.grad.tensor, |g| {
                crate::kernels::place::placed(g, &block, &shape, &start)
            });
            if let Ok(values) = values
                && let Ok(v) = FloatValue::from_host(values, &shape, &x.tensor.device())
            {
                return Some(v);
            }
        }
        let zeros = x.view::<MAX_LOGICAL_RANK>().zeros_like();
        let mut window = zeros.dims().map(|d| 0..d);
        for (w, r) in window[MAX_LOGICAL_RANK - x.rank..].iter_mut().zip(ranges) {
            *w = r.clone();
        }
        let placed = zeros.slice_assign(window, self.grad.view::<MAX_LOGICAL_RANK>());
        Some(x.with_tensor(placed.reshape(x.tensor.dims())))
    }

    /// The inputs as owned values, for the helpers that read them that way (int inputs).
    pub fn owned_inputs(&self) -> Vec<Option<Value>> {
        self.inputs.iter().map(|v| v.cloned()).collect()
    }
}

/// The gradient `grad` (of an output broadcast from `shape`) summed back to `shape`; above rank
/// 4 in the 6-D view (the stored form merges axes that broadcasting keeps apart).
pub fn unbroadcast(grad: &FloatValue, shape: &[usize]) -> OpResult<FloatValue> {
    use crate::onnx::value::{MAX_LOGICAL_RANK, WIDE_RANK, stored_shape};
    let fail = || {
        OpError::Shape(format!(
            "a gradient of shape {:?} does not sum back to {shape:?}",
            grad.shape()
        ))
    };
    let stored = stored_shape(shape)?;
    let summed = if grad.rank >= WIDE_RANK || shape.len() >= WIDE_RANK {
        let mut want = [1usize; MAX_LOGICAL_RANK];
        want[MAX_LOGICAL_RANK - shape.len()..].copy_from_slice(shape);
        summed_to(grad.view::<MAX_LOGICAL_RANK>(), want).map(|t| t.reshape(stored))
    } else {
        summed_to(grad.tensor.clone(), stored)
    };
    Ok(FloatValue::new(summed.ok_or_else(fail)?, shape))
}

/// `t` summed over the axes where `want` has 1 and `t` has more, if that gives `want`.
fn summed_to<const D: usize>(mut t: Tensor<D>, want: [usize; D]) -> Option<Tensor<D>> {
    for (axis, (&w, have)) in want.iter().zip(t.dims()).enumerate() {
        if w == 1 && have != 1 {
            t = t.sum_dim(axis);
        }
    }
    (t.dims() == want).then_some(t)
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

/// Whether every value of `t` is 0.
fn all_zero(t: &Tensor<4>) -> bool {
    t.clone().abs().max().into_scalar::<f32>() == 0.0
}
