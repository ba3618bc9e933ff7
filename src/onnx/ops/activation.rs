//! Element-wise activations and math (`Erf`, `Gelu`, `Sqrt`, `Exp`, `Neg`, `Pow` by a constant) and
//! `Softmax`, plus the pass-through ops (`Identity`, `Dropout`).

use std::f32::consts::FRAC_2_SQRT_PI;

use burn::tensor::{Tensor, activation};

use super::conv::is_plain_cpu;
use super::grad::{activation_grad, host_gradient, map_grad};
use super::inputs::{missing, take_float};
use super::operator::{
    Backward, BoxRule, BuildContext, Epilogue, OpResult, Operator, OrNoGradient, Tangents,
};
use crate::error::OpError;
use crate::kernels::activation::Activation as Fused;
use crate::kernels::transcendental::{self, Elementwise};
use crate::onnx::host;
use crate::onnx::value::{FloatValue, Value, WIDE_RANK};

impl Activation {
    /// `Erf`, `Exp`, `Sigmoid`, the exact `Gelu` and a softmax over the last axis on the
    /// host's vectorised kernels ([`transcendental`]), on the plain CPU backend (Burn's run
    /// `libm` one value at a time): in place where the op owns its input's buffer alone, else
    /// into a new one. Returns the result and `true`, or `t` and `false` elsewhere.
    fn on_host(&self, t: Tensor<4>, softmax_dim: usize) -> OpResult<(Tensor<4>, bool)> {
        let f = match self.0 {
            Act::Erf => Some(Elementwise::Erf),
            Act::Exp => Some(Elementwise::Exp),
            Act::Sigmoid => Some(Elementwise::Sigmoid),
            Act::Silu => Some(Elementwise::Silu),
            Act::Gelu(false) => Some(Elementwise::Gelu),
            _ => None,
        };
        let softmax = matches!(self.0, Act::Softmax(_)) && softmax_dim == 3;
        if (f.is_none() && !softmax) || !is_plain_cpu(&t.device()) {
            return Ok((t, false));
        }
        let row = t.dims()[3];
        let (t, updated) = host::update_in_place(t, |values| match f {
            Some(f) => transcendental::in_place(f, values),
            None => transcendental::softmax_rows_in_place(values, row),
        });
        if updated {
            return Ok((t, true));
        }
        let values = host::with_floats(&t, |values| match f {
            Some(f) => transcendental::mapped(f, values),
            None => transcendental::softmax_rows(values, row),
        })?;
        Ok((host::tensor(values, t.dims(), &t.device()), true))
    }
}

#[derive(Clone, Copy)]
enum Act {
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    Sigmoid,
    /// SiLU, `x · σ(x)`: ONNX's `Swish` (alpha 1), and the `Mul(x, Sigmoid(x))` exporters
    /// write for PyTorch's `SiLU` (`onnx::rewrite`).
    Silu,
    Tanh,
    LeakyRelu(f64),
    HardSigmoid {
        alpha: f64,
        beta: f64,
    },
    HardSwish,
    Erf,
    /// GELU; `true` for the tanh approximation.
    Gelu(bool),
    Sqrt,
    Exp,
    Neg,
    /// `x^e` for a constant exponent `e`.
    Pow(f32),
    Softmax(i64),
    PassThrough,
}

struct Activation(Act);

/// A scalar bound of `Clip` given as a constant input (opset >= 11).
fn clip_bound(ctx: &BuildContext, i: usize, default: f32) -> OpResult<f32> {
    if ctx.node.input.get(i).is_none_or(|n| n.is_empty()) {
        return Ok(default);
    }
    let v = ctx
        .constant_input(i)
        .ok_or_else(|| OpError::Unsupported("Clip bounds must be constants".into()))?;
    v.first()
        .copied()
        .ok_or_else(|| OpError::Data("empty Clip bound".into()))
}

/// The constant scalar exponent of `Pow`.
fn pow_exponent(ctx: &BuildContext) -> OpResult<f32> {
    match ctx.constant_input(1).as_deref() {
        Some([e]) => Ok(*e),
        Some(v) => Err(OpError::Unsupported(format!(
            "the exponent must be one value, got {} (only x^constant is supported)",
            v.len()
        ))),
        None => Err(OpError::Unsupported(
            "the exponent must be a constant (only x^constant is supported)".into(),
        )),
    }
}

/// Builds an activation or element-wise math node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let act = match ctx.node.op_type.as_str() {
        "Relu" => Act::Relu,
        "Clip" if ctx.opset < 11 => Act::Clip {
            min: a.float("min", f32::MIN),
            max: a.float("max", f32::MAX),
        },
        "Clip" => Act::Clip {
            min: clip_bound(ctx, 1, f32::MIN)?,
            max: clip_bound(ctx, 2, f32::MAX)?,
        },
        "Sigmoid" => Act::Sigmoid,
        "Swish" => match a.float("alpha", 1.0) {
            1.0 => Act::Silu,
            alpha => {
                return Err(OpError::Unsupported(format!(
                    "Swish with alpha {alpha} (only alpha 1, SiLU, is supported)"
                )));
            }
        },
        "Tanh" => Act::Tanh,
        "LeakyRelu" => Act::LeakyRelu(f64::from(a.float("alpha", 0.01))),
        "HardSigmoid" => Act::HardSigmoid {
            alpha: f64::from(a.float("alpha", 0.2)),
            beta: f64::from(a.float("beta", 0.5)),
        },
        "HardSwish" => Act::HardSwish,
        "Erf" => Act::Erf,
        "Gelu" => match a.string("approximate").as_deref() {
            None | Some("none") => Act::Gelu(false),
            Some("tanh") => Act::Gelu(true),
            Some(other) => {
                return Err(OpError::Attribute(format!(
                    "unknown Gelu approximation `{other}`"
                )));
            }
        },
        "Sqrt" => Act::Sqrt,
        "Exp" => Act::Exp,
        "Neg" => Act::Neg,
        "Pow" => Act::Pow(pow_exponent(ctx)?),
        "Softmax" => Act::Softmax(a.int("axis", if ctx.opset < 13 { 1 } else { -1 })),
        "Identity" | "Dropout" => Act::PassThrough,
        other => {
            return Err(OpError::Unsupported(format!(
                "`{other}` is not an activation"
            )));
        }
    };
    Ok(Box::new(Activation(act)))
}

impl Operator for Activation {
    fn affine_in(&self, i: usize) -> bool {
        i == 0 && matches!(self.0, Act::PassThrough)
    }

    fn softmax_axis(&self) -> Option<i64> {
        match self.0 {
            Act::Softmax(axis) => Some(axis),
            _ => None,
        }
    }

    fn epilogue(&self) -> Option<Epilogue> {
        let a = match self.0 {
            Act::Relu => Fused::Relu,
            Act::Clip { min, max } => Fused::Clip(min, max),
            Act::LeakyRelu(slope) => Fused::LeakyRelu(slope as f32),
            _ => return None,
        };
        Some(Epilogue::Activation(a))
    }

    fn box_rule(&self, _inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        Ok(match self.0 {
            Act::Softmax(_) => BoxRule::Dense,
            _ => BoxRule::Pointwise,
        })
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let Value::Float(y) = step.output else {
            return Err(OpError::NoGradient);
        };
        if step.grad.tensor.dims() != y.tensor.dims() {
            return Err(OpError::Shape(format!(
                "gradient of shape {:?} for a tensor of {:?}",
                step.grad.shape(),
                y.shape()
            )));
        }
        let g = match self.0 {
            Act::PassThrough => Ok(step.grad),
            // dx = y (g - sum(g y)) along the softmax axis: on the host over the last axis.
            Act::Softmax(axis)
                if y.rank < WIDE_RANK
                    && y.physical_axis(axis)? == 3
                    && is_plain_cpu(&y.tensor.device()) =>
            {
                let row = y.tensor.dims()[3];
                host_gradient(y, &step.grad, |y, g| {
                    transcendental::softmax_gradient(y, g, row)
                })
            }
            Act::Softmax(axis) if y.rank < WIDE_RANK => {
                let dim = y.physical_axis(axis)?;
                let gy = step.grad.tensor.clone().mul(y.tensor.clone());
                let sum = gy.clone().sum_dim(dim);
                Ok(step.grad.with_tensor(gy.sub(y.tensor.clone().mul(sum))))
            }
            // σ'(x) = y (1 - y), in one pass on the host.
            Act::Sigmoid => map_grad(y, &step.grad, |y, g| g * (y * (1.0 - y))),
            // SiLU'(x) = σ + x σ (1 - σ), from the input.
            Act::Silu => host_gradient(step.float(0).or_no_gradient()?, &step.grad, |x, g| {
                transcendental::mapped_times(Elementwise::SiluDerivative, x, g)
            }),
            // PyTorch's hardsigmoid_backward and hardswish_backward, from the input.
            Act::HardSigmoid { alpha, beta } => {
                let (alpha, beta) = (alpha as f32, beta as f32);
                let x = step.float(0).or_no_gradient()?;
                map_grad(x, &step.grad, |x, g| {
                    let v = alpha * x + beta;
                    if v > 0.0 && v < 1.0 { g * alpha } else { 0.0 }
                })
            }
            // erf'(x) = 2 / sqrt(pi) · e^(-x²).
            Act::Erf => map_grad(step.float(0).or_no_gradient()?, &step.grad, |x, g| {
                g * FRAC_2_SQRT_PI * transcendental::exp::<false>(-x * x)
            }),
            // GELU'(x) = Φ(x) + x φ(x) (the exact GELU; the tanh form takes autodiff).
            Act::Gelu(false) => {
                host_gradient(step.float(0).or_no_gradient()?, &step.grad, |x, g| {
                    transcendental::mapped_times(Elementwise::GeluDerivative, x, g)
                })
            }
            // (x^e)' = e x^(e - 1).
            Act::Pow(e) => map_grad(step.float(0).or_no_gradient()?, &step.grad, |x, g| {
                g * e * x.powf(e - 1.0)
            }),
            // sqrt'(x) = 1 / (2 sqrt(x)), from the output.
            Act::Sqrt => Ok(step.grad.with_tensor(
                step.grad
                    .tensor
                    .clone()
                    .div(y.tensor.clone().mul_scalar(2.0)),
            )),
            // (e^x)' = e^x, the output.
            Act::Exp => Ok(step
                .grad
                .with_tensor(step.grad.tensor.clone().mul(y.tensor.clone()))),
            Act::HardSwish => map_grad(step.float(0).or_no_gradient()?, &step.grad, |x, g| {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    g * (x / 3.0 + 0.5)
                } else {
                    g
                }
            }),
            _ => match self.epilogue() {
                Some(Epilogue::Activation(a)) => activation_grad(a, y, &step.grad),
                _ => Err(OpError::NoGradient),
            },
        };
        g.map(|g| vec![Some(g)])
    }

    /// An element-wise map's Jacobian is diagonal and Softmax's symmetric: the tangent is the
    /// reverse step applied to the input's tangent.
    fn tangent(&self, step: &Tangents) -> OpResult<FloatValue> {
        let t = step.only_first()?;
        let mut out = self.backward(step.reverse(t.clone()))?;
        out.pop().flatten().ok_or(OpError::NoSecondOrder)
    }

    /// `grad · f''(x) · ẋ` element-wise (zero for the piecewise-linear ones), and Softmax's
    /// `ẏ (g - sum(g y)) - y sum(g ẏ)` along its axis.
    fn curvature(&self, step: &Tangents, grad: &FloatValue) -> OpResult<Vec<Option<FloatValue>>> {
        let t = step.only_first()?;
        let y = step.float_output()?;
        let term = match self.0 {
            Act::Relu
            | Act::Clip { .. }
            | Act::LeakyRelu(_)
            | Act::HardSigmoid { .. }
            | Act::PassThrough => None,
            // σ'' = σ' (1 - 2σ) = y (1 - y) (1 - 2y).
            Act::Sigmoid => {
                let y = &y.tensor;
                let one_minus = y.clone().neg().add_scalar(1.0);
                let second = y
                    .clone()
                    .mul(one_minus)
                    .mul(y.clone().mul_scalar(-2.0).add_scalar(1.0));
                Some(grad.with_tensor(grad.tensor.clone().mul(second).mul(t.tensor.clone())))
            }
            // SiLU'' = σ (1 - σ) (2 + x (1 - 2σ)).
            Act::Silu => {
                let x = step.inputs.first().copied().flatten();
                let Some(Value::Float(x)) = x else {
                    return Err(OpError::NoSecondOrder);
                };
                let second = map_grad(x, t, |x, t| {
                    let s = 1.0 / (1.0 + transcendental::exp::<false>(-x));
                    t * s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
                })?;
                Some(grad.with_tensor(grad.tensor.clone().mul(second.tensor)))
            }
            // PyTorch's hardswish double backward: 1/3 strictly inside (-3, 3).
            Act::HardSwish => {
                let x = step.inputs.first().copied().flatten();
                let Some(Value::Float(x)) = x else {
                    return Err(OpError::NoSecondOrder);
                };
                let inside =
                    map_grad(x, t, |x, t| if x > -3.0 && x < 3.0 { t / 3.0 } else { 0.0 })?;
                Some(grad.with_tensor(grad.tensor.clone().mul(inside.tensor)))
            }
            Act::Softmax(axis) if y.rank < WIDE_RANK => {
                let dim = y.physical_axis(axis)?;
                let dy = self.tangent(step)?.tensor;
                let (g, y) = (&grad.tensor, &y.tensor);
                let gy = g.clone().mul(y.clone()).sum_dim(dim);
                let gdy = g.clone().mul(dy.clone()).sum_dim(dim);
                let term = dy.mul(g.clone().sub(gy)).sub(y.clone().mul(gdy));
                Some(grad.with_tensor(term))
            }
            _ => return Err(OpError::NoSecondOrder),
        };
        Ok(vec![term])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        if let Act::PassThrough = self.0 {
            return inputs
                .first_mut()
                .and_then(Option::take)
                .ok_or_else(|| missing(0));
        }
        let mut x = take_float(inputs, 0)?;
        let softmax_dim = match self.0 {
            Act::Softmax(axis) => x.physical_axis(axis)?,
            _ => 0,
        };
        let (t, done) = self.on_host(x.tensor, softmax_dim)?;
        if done {
            x.tensor = t;
            return Ok(Value::Float(x));
        }
        x.tensor = match self.0 {
            Act::Relu => activation::relu(t),
            Act::Clip { min, max } => t.clamp(min, max),
            Act::Sigmoid => activation::sigmoid(t),
            Act::Silu => activation::silu(t),
            Act::Tanh => activation::tanh(t),
            Act::LeakyRelu(slope) => activation::leaky_relu(t, slope),
            Act::HardSigmoid { alpha, beta } => activation::hard_sigmoid(t, alpha, beta),
            Act::HardSwish => activation::hard_swish(t),
            Act::Erf => t.erf(),
            Act::Gelu(false) => activation::gelu(t),
            Act::Gelu(true) => activation::gelu_approximate(t),
            Act::Sqrt => t.sqrt(),
            Act::Exp => t.exp(),
            Act::Neg => t.neg(),
            Act::Pow(1.0) => t,
            Act::Pow(2.0) => t.clone().mul(t),
            Act::Pow(0.5) => t.sqrt(),
            Act::Pow(e) => t.powf_scalar(e),
            Act::Softmax(_) => activation::softmax(t, softmax_dim),
            Act::PassThrough => t,
        };
        Ok(Value::Float(x))
    }
}
