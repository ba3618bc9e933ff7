//! `BatchNormalization` in inference mode, folded at load time into `x * scale + shift`;
//! `LayerNormalization` (ConvNeXt) and `InstanceNormalization`, which normalise by statistics
//! of the input itself.

use burn::tensor::{Tensor, TensorData};

use super::conv::is_plain_cpu;
use super::grad::host_gradient;
use super::inputs::take_float;
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::kernels::layer_norm;
use crate::onnx::host;
use crate::onnx::value::{FloatValue, MAX_RANK, Value, WIDE_RANK, normalize_axis};

struct BatchNorm {
    channels: usize,
    /// `gamma / sqrt(var + eps)` per channel.
    scale: Tensor<1>,
    /// `beta - mean * scale` per channel.
    shift: Tensor<1>,
    /// The same on the host (FullGrad's bias).
    host_shift: Vec<f32>,
}

fn host(ctx: &BuildContext, i: usize, what: &str) -> OpResult<Vec<f64>> {
    let v = ctx.constant_input(i).ok_or_else(|| {
        OpError::Unsupported(format!(
            "{what} must be a constant initialiser (export the model in eval mode)"
        ))
    })?;
    Ok(v.iter().copied().map(f64::from).collect())
}

/// Builds a `BatchNormalization`, `LayerNormalization` or `InstanceNormalization` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    match ctx.node.op_type.as_str() {
        "LayerNormalization" => layer_norm(ctx),
        "InstanceNormalization" => instance_norm(ctx),
        _ => batch_norm(ctx),
    }
}

fn batch_norm(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let eps = f64::from(ctx.attrs().float("epsilon", 1e-5));
    let gamma = host(ctx, 1, "scale")?;
    let beta = host(ctx, 2, "bias")?;
    let mean = host(ctx, 3, "mean")?;
    let var = host(ctx, 4, "var")?;
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c, c, c] || c == 0 {
        return Err(OpError::Data(
            "scale, bias, mean and var must have the same, positive length".into(),
        ));
    }
    let scale: Vec<f32> = (0..c)
        .map(|i| (gamma[i] / (var[i] + eps).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|i| (beta[i] - mean[i] * gamma[i] / (var[i] + eps).sqrt()) as f32)
        .collect();
    Ok(Box::new(BatchNorm {
        channels: c,
        scale: Tensor::<1>::from_data(TensorData::new(scale, [c]), ctx.device),
        shift: Tensor::<1>::from_data(TensorData::new(shift.clone(), [c]), ctx.device),
        host_shift: shift,
    }))
}

impl Operator for BatchNorm {
    fn affine_in(&self, i: usize) -> bool {
        i == 0
    }

    fn channel_bias(&self) -> Option<Vec<f32>> {
        Some(self.host_shift.clone())
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let mut x = take_float(inputs, 0)?;
        let shape = x.shape();
        let c = self.channels;
        if !(2..=MAX_RANK).contains(&x.rank) || shape[1] != c {
            return Err(OpError::Shape(format!(
                "input shape {shape:?} does not have {c} channels on axis 1"
            )));
        }
        let dims = along_channels(c, x.rank);
        let scale = self.scale.clone().reshape(dims);
        let shift = self.shift.clone().reshape(dims);
        x.tensor = x.tensor.mul(scale).add(shift);
        Ok(Value::Float(x))
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step
            .float(0)
            .filter(|x| (2..=MAX_RANK).contains(&x.rank) && step.only_first())
            .or_no_gradient()?;
        if step.grad.tensor.dims() != x.tensor.dims() {
            return Err(OpError::Shape(format!(
                "gradient of shape {:?} for a tensor of {:?}",
                step.grad.shape(),
                x.shape()
            )));
        }
        let scale = self
            .scale
            .clone()
            .reshape(along_channels(self.channels, x.rank));
        let g = step.grad.tensor.clone().mul(scale);
        Ok(vec![Some(x.with_tensor(g))])
    }
}

/// Which axes [`Normalize`] takes its statistics over.
enum Axes {
    /// `axis` and every axis after it; scale and bias have the shape of those axes.
    From(i64),
    /// The spatial axes (2 and on); scale and bias hold one value per channel (axis 1).
    Spatial,
}

/// `(x - mean) / sqrt(var + eps) * scale + bias`, mean and variance over `axes` of `x` itself.
struct Normalize {
    axes: Axes,
    eps: f64,
    scale: FloatValue,
    bias: Option<FloatValue>,
    /// Scale and bias on the host, for a layer normalisation over the last axis alone on the
    /// plain CPU backend ([`layer_norm`](crate::kernels::layer_norm)).
    host: Option<(Vec<f32>, Option<Vec<f32>>)>,
}

/// Constant input `i` on the device with its own shape.
fn constant_value(ctx: &BuildContext, i: usize, what: &str) -> OpResult<FloatValue> {
    let t = ctx
        .node
        .input
        .get(i)
        .and_then(|n| ctx.constants.get(n))
        .ok_or_else(|| OpError::Unsupported(format!("{what} must be a constant initialiser")))?;
    FloatValue::from_host(t.floats(), &t.shape(), ctx.device)
}

fn optional_bias(ctx: &BuildContext, i: usize) -> OpResult<Option<FloatValue>> {
    match ctx.node.input.get(i) {
        Some(n) if !n.is_empty() => constant_value(ctx, i, "bias").map(Some),
        _ => Ok(None),
    }
}

fn layer_norm(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    if a.int("stash_type", 1) != 1 {
        return Err(OpError::Unsupported(
            "only stash_type 1 (float32 statistics) is supported".into(),
        ));
    }
    let (scale, bias) = (constant_value(ctx, 1, "scale")?, optional_bias(ctx, 2)?);
    let one_axis = |v: &FloatValue| v.rank == 1;
    let host = (is_plain_cpu(ctx.device) && one_axis(&scale) && bias.as_ref().is_none_or(one_axis))
        .then(|| {
            let bias = match bias {
                Some(_) => Some(ctx.constant_input(2)?),
                None => None,
            };
            Some((ctx.constant_input(1)?, bias))
        })
        .flatten();
    Ok(Box::new(Normalize {
        axes: Axes::From(a.int("axis", -1)),
        eps: f64::from(a.float("epsilon", 1e-5)),
        scale,
        bias,
        host,
    }))
}

fn instance_norm(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let scale = constant_value(ctx, 1, "scale")?;
    let bias = constant_value(ctx, 2, "bias")?;
    if scale.shape() != bias.shape() {
        return Err(OpError::Data(
            "scale and bias must have the same length".into(),
        ));
    }
    Ok(Box::new(Normalize {
        axes: Axes::Spatial,
        eps: f64::from(ctx.attrs().float("epsilon", 1e-5)),
        scale,
        bias: Some(bias),
        host: None,
    }))
}

/// The stored shape of `c` per-channel values laid out to broadcast along axis 1 of a
/// rank-`rank` tensor (2..=4).
fn along_channels(c: usize, rank: usize) -> [usize; MAX_RANK] {
    let mut dims = [1usize; MAX_RANK];
    dims[MAX_RANK - rank + 1] = c;
    dims
}

impl Normalize {
    /// The physical axes of `x` the statistics are taken over, and the scale and bias laid
    /// out to broadcast against it.
    fn layout(&self, x: &FloatValue) -> OpResult<(Vec<usize>, Tensor<4>, Option<Tensor<4>>)> {
        let shape = x.shape();
        let first = match self.axes {
            Axes::From(axis) => normalize_axis(axis, x.rank)?,
            Axes::Spatial if (3..=MAX_RANK).contains(&x.rank) => 2,
            Axes::Spatial => {
                return Err(OpError::Shape(format!(
                    "input shape {shape:?} has no spatial axes"
                )));
            }
        };
        let (scale, bias) = match self.axes {
            Axes::From(_) => {
                let fits = |v: &FloatValue| v.shape() == shape[first..];
                if !fits(&self.scale) || self.bias.as_ref().is_some_and(|b| !fits(b)) {
                    return Err(OpError::Shape(format!(
                        "scale of shape {:?} and bias of shape {:?} do not match the normalised axes {:?} of {shape:?}",
                        self.scale.shape(),
                        self.bias.as_ref().map(FloatValue::shape),
                        &shape[first..]
                    )));
                }
                (
                    self.scale.tensor.clone(),
                    self.bias.as_ref().map(|b| b.tensor.clone()),
                )
            }
            Axes::Spatial => {
                let c = self.scale.shape().iter().product::<usize>();
                if shape[1] != c {
                    return Err(OpError::Shape(format!(
                        "input shape {shape:?} does not have {c} channels on axis 1"
                    )));
                }
                let dims = along_channels(c, x.rank);
                (
                    self.scale.tensor.clone().reshape(dims),
                    self.bias.as_ref().map(|b| b.tensor.clone().reshape(dims)),
                )
            }
        };
        let physical = (first..x.rank)
            .map(|d| x.physical_axis(d as i64))
            .collect::<OpResult<Vec<_>>>()?;
        Ok((physical, scale, bias))
    }

    /// The mean over `axes` (kept, of size 1).
    fn mean(t: Tensor<4>, axes: &[usize]) -> Tensor<4> {
        axes.iter().fold(t, |t, &d| t.mean_dim(d))
    }

    /// The host's scale and bias where `x` is normalised over its last axis alone (the
    /// statistics' `axes` from [`Self::layout`]) on the plain CPU backend.
    fn on_host(&self, x: &FloatValue, axes: &[usize]) -> Option<(&[f32], Option<&[f32]>)> {
        let (scale, bias) = self.host.as_ref()?;
        let last = axes == [MAX_RANK - 1] && is_plain_cpu(&x.tensor.device());
        last.then_some((scale.as_slice(), bias.as_deref()))
    }
}

impl Operator for Normalize {
    /// `dx = r (ĝ - mean(ĝ) - x̂ mean(ĝ x̂))` with `ĝ = g · scale`, `x̂ = (x - mean) r` and
    /// `r = 1 / sqrt(var + eps)`, the means over the normalised axes (scale and bias are
    /// constants). Layer normalisation only (checked against autodiff on the zoo's
    /// transformers and ConvNeXt); instance normalisation, which no reference model here
    /// holds, keeps Burn's autodiff.
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step
            .float(0)
            .filter(|x| {
                step.only_first() && x.rank < WIDE_RANK && matches!(self.axes, Axes::From(_))
            })
            .or_no_gradient()?;
        let (axes, scale, _) = self.layout(x)?;
        if let Some((scale, _)) = self.on_host(x, &axes) {
            let dx = host_gradient(x, &step.grad, |x, g| {
                layer_norm::backward(x, g, scale, self.eps as f32)
            })?;
            return Ok(vec![Some(dx)]);
        }
        let centered = x.tensor.clone().sub(Self::mean(x.tensor.clone(), &axes));
        let var = Self::mean(centered.clone().mul(centered.clone()), &axes);
        let r = var.add_scalar(self.eps).sqrt().recip();
        let normalised = centered.mul(r.clone());
        let g = step.grad.tensor.clone().mul(scale);
        let along = Self::mean(g.clone().mul(normalised.clone()), &axes);
        let dx = g
            .clone()
            .sub(Self::mean(g, &axes))
            .sub(normalised.mul(along))
            .mul(r);
        Ok(vec![Some(x.with_tensor(dx))])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = take_float(inputs, 0)?;
        let (physical, scale, bias) = self.layout(&x)?;
        if let Some((scale, bias)) = self.on_host(&x, &physical) {
            let dims = x.tensor.dims();
            let y = host::with_floats(&x.tensor, |xs| {
                layer_norm::forward(xs, scale, bias, self.eps as f32)
            })?;
            let y = host::tensor(y, dims, &x.tensor.device());
            return Ok(Value::Float(x.with_tensor(y)));
        }
        let centered = x
            .tensor
            .clone()
            .sub(Self::mean(x.tensor.clone(), &physical));
        let var = Self::mean(centered.clone().mul(centered.clone()), &physical);
        let mut y = centered.div(var.add_scalar(self.eps).sqrt()).mul(scale);
        if let Some(b) = bias {
            y = y.add(b);
        }
        Ok(Value::Float(x.with_tensor(y)))
    }
}
