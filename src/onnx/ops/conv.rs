//! `Conv` (2-D, with groups, dilation, explicit or automatic padding). On Burn's plain CPU
//! device (no gradients) it runs the host kernel of [`kernels::conv`](crate::kernels::conv); tensors
//! that carry gradients, and the GPU, use Burn's convolution.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::inputs::{take_float, take_nchw};
use super::operator::{
    Backward, BoxRule, BuildContext, Fusion, HostConv, OpResult, Operator, OrNoGradient,
};
use super::padding::{Padding, spatial2};
use crate::error::OpError;
use crate::kernels::activation::Activation;
use crate::kernels::epilogue::Epilogue as KernelEpilogue;
use crate::kernels::shape::ConvShape;
use crate::kernels::{conv as cpu_conv, conv_grad, grad_window, winograd};
use crate::onnx::host;
use crate::onnx::value::{FloatValue, Value};

struct Conv {
    strides: [usize; 2],
    dilations: [usize; 2],
    groups: usize,
    padding: Padding,
    /// Constant weights and bias on the host, for the CPU kernel (CPU devices only).
    host: Option<HostWeights>,
    /// The constant bias on the host, on every device (FullGrad reads it).
    bias: Option<Vec<f32>>,
}

/// A convolution's constant parameters as host floats.
struct HostWeights {
    shape: [usize; 4],
    weights: Arc<[f32]>,
    bias: Option<Arc<[f32]>>,
    /// The Winograd-transformed filters, for 3×3 stride-1 convolutions.
    winograd: Option<Vec<f32>>,
    /// Those of the input gradient (flipped, channels swapped), made at the first reverse pass.
    winograd_grad: OnceLock<Vec<f32>>,
}

impl HostWeights {
    /// The input gradient of `batch` images of `s` from the output gradient `g` (through
    /// `gate`): for one image whose gradient is zero outside a small window (a detection's),
    /// that window's alone ([`grad_window`]); by Winograd where the forward pass uses it, else
    /// by the direct kernel.
    fn input_grad(
        &self,
        g: &[f32],
        batch: usize,
        s: &ConvShape,
        gate: Option<conv_grad::Gate>,
    ) -> Vec<f32> {
        if batch == 1 {
            let cut = grad_window::input_grad_in_window(
                g,
                gate.map(|gate| gate.output),
                s,
                |g, output, cut| {
                    let gate = gate.zip(output).map(|(gate, output)| conv_grad::Gate {
                        output,
                        activation: gate.activation,
                    });
                    self.dense_input_grad(g, 1, cut, gate)
                },
            );
            if let Some(dx) = cut {
                return dx;
            }
        }
        self.dense_input_grad(g, batch, s, gate)
    }

    /// [`HostWeights::input_grad`] over the whole planes.
    fn dense_input_grad(
        &self,
        g: &[f32],
        batch: usize,
        s: &ConvShape,
        gate: Option<conv_grad::Gate>,
    ) -> Vec<f32> {
        if self.winograd.is_some() && winograd::grad_applies(s) && winograd::pays(s, batch) {
            let [cout, cin, ..] = self.shape;
            let u = self
                .winograd_grad
                .get_or_init(|| winograd::transform_grad_filters(&self.weights, cout, cin));
            return winograd::input_grad(g, batch, s, u, gate);
        }
        conv_grad::conv2d_input_grad(g, batch, s, &self.weights, gate)
    }
}

/// Whether `device` is Burn's CPU backend without autodiff: where the host kernel runs.
pub(crate) fn is_plain_cpu(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// Builds a `Conv` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let groups = a.int("group", 1);
    if groups < 1 {
        return Err(OpError::Attribute(format!(
            "group {groups} must be positive"
        )));
    }
    if let Some(k) = a.ints("kernel_shape")
        && k.len() != 2
    {
        return Err(OpError::Unsupported(format!(
            "kernel_shape {k:?}: only 2-D convolutions are supported"
        )));
    }
    let strides = spatial2(a.ints("strides"), 1, "strides")?;
    let dilations = spatial2(a.ints("dilations"), 1, "dilations")?;
    let mut host = if is_plain_cpu(ctx.device) {
        host_weights(ctx)?
    } else {
        None
    };
    if let Some(h) = &mut host {
        let [cout, cin, kh, kw] = h.shape;
        if cout % groups as usize != 0 {
            return Err(OpError::Shape(format!(
                "{cout} output channels do not divide into {groups} groups"
            )));
        }
        let probe = ConvShape {
            cin,
            input: [kh, kw],
            cout,
            groups: groups as usize,
            kernel: [kh, kw],
            stride: strides,
            dilation: dilations,
            pad: [(0, 0); 2],
        };
        if winograd::applies(&probe) {
            h.winograd = Some(winograd::transform_filters(&h.weights, cout, cin));
        }
    }
    Ok(Box::new(Conv {
        strides,
        dilations,
        groups: groups as usize,
        padding: Padding::from_attrs(&a)?,
        host,
        bias: ctx
            .node
            .input
            .get(2)
            .filter(|n| !n.is_empty())
            .and_then(|_| ctx.constant_input(2)),
    }))
}

/// The weights (and bias) when they are 4-D constants known at load time; `None` when they are
/// not (Burn's convolution runs then).
fn host_weights(ctx: &BuildContext) -> OpResult<Option<HostWeights>> {
    let Some(name) = ctx.node.input.get(1) else {
        return Ok(None);
    };
    let Some(shape) = ctx.constants.get(name).map(|c| c.shape()) else {
        return Ok(None);
    };
    let Ok(shape) = <[usize; 4]>::try_from(shape) else {
        return Ok(None);
    };
    let Some(weights) = ctx.constant_input(1) else {
        return Ok(None);
    };
    check_weights(shape)?;
    let has_bias = ctx.node.input.get(2).is_some_and(|n| !n.is_empty());
    let bias: Option<Arc<[f32]>> = match (has_bias, ctx.constant_input(2)) {
        (false, _) => None,
        (true, Some(b)) if b.len() == shape[0] => Some(b.into()),
        (true, Some(b)) => {
            return Err(OpError::Shape(format!(
                "a bias of {} values for {} output channels",
                b.len(),
                shape[0]
            )));
        }
        (true, None) => return Ok(None),
    };
    Ok(Some(HostWeights {
        shape,
        weights: weights.into(),
        bias,
        winograd: None,
        winograd_grad: OnceLock::new(),
    }))
}

/// Refuses weights with an empty axis.
fn check_weights(w: [usize; 4]) -> OpResult<()> {
    if w.contains(&0) {
        return Err(OpError::Shape(format!(
            "weights of shape {w:?} have an empty axis"
        )));
    }
    Ok(())
}

impl Conv {
    /// What both reverse steps ([`Operator::backward`], [`Operator::box_input_grad`]) read:
    /// the host weights, the input's dims, the convolution's shape with the fused padding and
    /// its output's rows and columns.
    /// [`OpError::NoGradient`] where the host kernel cannot take the step: no host weights, a
    /// gradient wanted for the weights, an input that is not 4-D, or a fused activation whose
    /// derivative its output does not tell.
    fn reverse_step(
        &self,
        step: &Backward,
    ) -> OpResult<(&HostWeights, [usize; 4], ConvShape, [usize; 2])> {
        let host = self.host.as_ref().or_no_gradient()?;
        let x = step
            .float(0)
            .filter(|x| x.rank == 4 && step.only_first())
            .or_no_gradient()?;
        if step.gate.is_some_and(|(a, _)| !a.derivative_from_output()) {
            return Err(OpError::NoGradient);
        }
        let dims = x.tensor.dims();
        let (s, out) = self.padded_shape(dims, host.shape, step.pad)?;
        Ok((host, dims, s, out))
    }

    fn shape(&self, x: [usize; 4], w: [usize; 4]) -> OpResult<ConvShape> {
        let [_, cin, h, wd] = x;
        let [cout, cin_g, kh, kw] = w;
        check_weights(w)?;
        if cin_g.checked_mul(self.groups) != Some(cin) || cout % self.groups != 0 {
            return Err(OpError::Shape(format!(
                "weight [{cout}, {cin_g}, {kh}, {kw}] with group {} does not fit an input with {cin} channels",
                self.groups
            )));
        }
        let shape = ConvShape {
            cin,
            input: [h, wd],
            cout,
            groups: self.groups,
            kernel: [kh, kw],
            stride: self.strides,
            dilation: self.dilations,
            pad: self
                .padding
                .resolve([h, wd], [kh, kw], self.strides, self.dilations),
        };
        match shape.output() {
            Some([oh, ow]) if oh > 0 && ow > 0 => {
                crate::budget::check_shape(&[x[0], cout, oh, ow])?;
                crate::budget::check_work(x[0] * cout * oh * ow, cin_g * kh * kw)?;
            }
            _ => {
                return Err(OpError::Shape(format!(
                    "kernel [{kh}, {kw}] does not fit the padded {h}x{wd} input"
                )));
            }
        }
        Ok(shape)
    }

    /// [`Conv::shape`] with `extra` zero padding (a fused `Pad`) added to the node's own, and
    /// the output's height and width.
    fn padded_shape(
        &self,
        x: [usize; 4],
        w: [usize; 4],
        extra: [(usize, usize); 2],
    ) -> OpResult<(ConvShape, [usize; 2])> {
        let mut s = self.shape(x, w)?;
        for (p, extra) in s.pad.iter_mut().zip(extra) {
            *p = (p.0.saturating_add(extra.0), p.1.saturating_add(extra.1));
        }
        let out = s
            .output()
            .ok_or_else(|| OpError::Shape("the kernel does not fit the padded input".into()))?;
        Ok((s, out))
    }

    /// The host kernel with `fusion` folded in; reads the input and the residual in place.
    fn run_host(&self, x: Tensor<4>, host: &HostWeights, fusion: Fusion) -> OpResult<Value> {
        let dims = x.dims();
        let (s, [oh, ow]) = self.padded_shape(dims, host.shape, fusion.pad)?;
        let out_dims = [dims[0], s.cout, oh, ow];
        crate::budget::check_shape(&out_dims)?;
        let residual = match fusion.residual {
            Some(Value::Float(r)) if r.shape() == out_dims => Some(r.tensor),
            Some(_) => {
                return Err(OpError::Shape(
                    "the residual does not have the output's shape".into(),
                ));
            }
            None => None,
        };
        let convolve = |x: &[f32], residual: Option<&[f32]>| {
            let epilogue = KernelEpilogue {
                bias: host.bias.as_deref(),
                residual,
                activation: fusion.activation,
            };
            match &host.winograd {
                Some(u) if winograd::applies(&s) && winograd::pays(&s, dims[0]) => {
                    winograd::conv2d(x, dims[0], &s, u, &epilogue)
                }
                _ => cpu_conv::conv2d(x, dims[0], &s, &host.weights, &epilogue),
            }
        };
        let out = host::with_floats(&x, |x| match &residual {
            Some(r) => host::with_floats(r, |r| convolve(x, Some(r))),
            None => Ok(convolve(x, None)),
        })??;
        Ok(Value::Float(FloatValue::nchw(host::tensor(
            out,
            out_dims,
            &x.device(),
        ))))
    }
}

/// `grad` run with the fused activation's gate as the kernels read it (its output's values,
/// which must have the gradient `g`'s shape), or without one.
fn through_gate(
    gate: Option<(Activation, &FloatValue)>,
    g: &Tensor<4>,
    grad: impl FnOnce(Option<conv_grad::Gate>) -> OpResult<Vec<f32>>,
) -> OpResult<Vec<f32>> {
    match gate {
        Some((_, y)) if y.tensor.dims() != g.dims() => Err(OpError::Shape(
            "the activation's output does not have the gradient's shape".into(),
        )),
        Some((activation, y)) => host::with_floats(&y.tensor, |output| {
            grad(Some(conv_grad::Gate { output, activation }))
        })?,
        None => grad(None),
    }
}

impl Operator for Conv {
    fn affine_in(&self, i: usize) -> bool {
        i == 0
    }

    fn channel_bias(&self) -> Option<Vec<f32>> {
        self.bias.clone()
    }

    fn fusable(&self, input: &Value, pad: [(usize, usize); 2], residual: Option<&Value>) -> bool {
        let (Some(host), Value::Float(x)) = (&self.host, input) else {
            return false;
        };
        let Ok((s, [oh, ow])) = <[usize; 4]>::try_from(x.shape())
            .map_err(drop)
            .and_then(|dims| self.padded_shape(dims, host.shape, pad).map_err(drop))
        else {
            return false;
        };
        let out = vec![x.shape()[0], s.cout, oh, ow];
        is_plain_cpu(&x.tensor.device())
            && residual.is_none_or(|r| {
                matches!(r, Value::Float(r) if r.shape() == out && is_plain_cpu(&r.tensor.device()))
            })
    }

    fn host_conv(&self, x: [usize; 4], pad: [(usize, usize); 2]) -> Option<HostConv<'_>> {
        let host = self.host.as_ref()?;
        let (s, _) = self.padded_shape(x, host.shape, pad).ok()?;
        Some(HostConv {
            s,
            weights: &host.weights,
            bias: host.bias.as_deref(),
        })
    }

    fn run_fused(&self, inputs: &mut [Option<Value>], fusion: Fusion) -> OpResult<Value> {
        let x = take_nchw(inputs, 0)?;
        let host = self
            .host
            .as_ref()
            .ok_or_else(|| OpError::Backend("fused without host weights".into()))?;
        self.run_host(x, host, fusion)
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let (host, dims, s, [oh, ow]) = self.reverse_step(&step)?;
        let g = &step.grad.tensor;
        if g.dims() != [dims[0], s.cout, oh, ow] {
            return Err(OpError::Shape(format!(
                "gradient of shape {:?} for an output of {:?}",
                g.dims(),
                [dims[0], s.cout, oh, ow]
            )));
        }
        let dx = through_gate(step.gate, g, |gate| {
            host::with_floats(g, |g| host.input_grad(g, dims[0], &s, gate))
        })?;
        let dx = host::tensor(dx, dims, &g.device());
        Ok(vec![Some(FloatValue::nchw(dx))])
    }

    fn box_rule(&self, _inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        Ok(BoxRule::Conv)
    }

    /// The box's outputs and the input region their taps read make a convolution of their
    /// own ([`grad_window::window_conv`]), whose input gradient is the region's.
    fn box_input_grad(
        &self,
        step: Backward,
        [rows, cols]: [Range<usize>; 2],
    ) -> OpResult<Option<(FloatValue, [Range<usize>; 2])>> {
        let (host, dims, s, _) = self.reverse_step(&step)?;
        if dims[0] != 1 {
            return Err(OpError::NoGradient);
        }
        let g = &step.grad.tensor;
        if g.dims() != [1, s.cout, rows.len(), cols.len()] {
            return Err(OpError::Shape(format!(
                "a gradient box of shape {:?} for {} output channels over {rows:?} x {cols:?}",
                g.dims(),
                s.cout
            )));
        }
        let Some((region, cut)) = grad_window::window_conv([&rows, &cols], &s) else {
            return Ok(None);
        };
        let dx = through_gate(step.gate, g, |gate| {
            host::with_floats(g, |g| host.dense_input_grad(g, 1, &cut, gate))
        })?;
        let dims = [1, s.cin, region[0].len(), region[1].len()];
        let dx = host::tensor(dx, dims, &g.device());
        Ok(Some((FloatValue::nchw(dx), region)))
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = take_nchw(inputs, 0)?;
        if let Some(host) = &self.host
            && is_plain_cpu(&x.device())
        {
            return self.run_host(x, host, Fusion::default());
        }
        let w = take_nchw(inputs, 1)?;
        let s = self.shape(x.dims(), w.dims())?;
        let bias = match inputs.get(2) {
            Some(Some(_)) => {
                let b = take_float(inputs, 2)?;
                let n = b.shape().iter().product::<usize>();
                if n != s.cout {
                    return Err(OpError::Shape(format!(
                        "a bias of {n} values for {} output channels",
                        s.cout
                    )));
                }
                Some(b.tensor.reshape([n]))
            }
            _ => None,
        };
        let options = ConvOptions {
            stride: s.stride,
            padding: s.pad,
            dilation: s.dilation,
            groups: self.groups,
        };
        Ok(Value::Float(FloatValue::nchw(conv2d(x, w, bias, options))))
    }
}
