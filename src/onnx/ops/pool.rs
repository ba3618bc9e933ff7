//! `MaxPool`, `AveragePool` (with `ceil_mode`, padding, `count_include_pad`) and the global pools.

use burn::tensor::Tensor;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::conv::is_plain_cpu;
use super::inputs::take_nchw;
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient, Tangents};
use super::padding::{Padding, spatial2};
use crate::error::OpError;
use crate::kernels::shape::ConvShape;
use crate::kernels::{conv_grad, pool};
use crate::onnx::host;
use crate::onnx::value::{FloatValue, Value};

enum Kind {
    Max { dilations: [usize; 2] },
    Average { count_include_pad: bool },
    GlobalAverage,
    GlobalMax,
}

struct Pool {
    kind: Kind,
    kernel: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
    ceil_mode: bool,
}

/// Builds a pooling node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let kind = match ctx.node.op_type.as_str() {
        "GlobalAveragePool" => Kind::GlobalAverage,
        "GlobalMaxPool" => Kind::GlobalMax,
        "MaxPool" => Kind::Max {
            dilations: spatial2(a.ints("dilations"), 1, "dilations")?,
        },
        _ => Kind::Average {
            count_include_pad: a.int("count_include_pad", 0) != 0,
        },
    };
    let global = matches!(kind, Kind::GlobalAverage | Kind::GlobalMax);
    let kernel = if global {
        [1, 1]
    } else {
        let kernel = a
            .ints("kernel_shape")
            .ok_or_else(|| OpError::Attribute("kernel_shape is required".into()))?;
        spatial2(Some(kernel), 1, "kernel_shape")?
    };
    Ok(Box::new(Pool {
        kind,
        kernel,
        strides: spatial2(a.ints("strides"), 1, "strides")?,
        padding: if global {
            Padding::Explicit([(0, 0); 2])
        } else {
            Padding::from_attrs(&a)?
        },
        ceil_mode: a.int("ceil_mode", 0) != 0,
    }))
}

/// Max pooling with the host kernel (Burn's CPU backend, no gradients).
fn host_max_pool(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [(usize, usize); 2],
) -> OpResult<Value> {
    let [n, c, h, w] = x.dims();
    let s = ConvShape::pooling(c, [h, w], kernel, stride, dilation, pad);
    let [oh, ow] = s.output().ok_or_else(|| does_not_fit(kernel, [h, w]))?;
    let out = host::with_floats(&x, |values| pool::max_pool2d(values, n, &s))?;
    Ok(Value::Float(FloatValue::nchw(host::tensor(
        out,
        [n, c, oh, ow],
        &x.device(),
    ))))
}

/// The error of a pooling window larger than its padded input.
fn does_not_fit(kernel: [usize; 2], [h, w]: [usize; 2]) -> OpError {
    OpError::Shape(format!(
        "kernel {kernel:?} does not fit the padded {h}x{w} input"
    ))
}

/// A windowed pooling's padding `(begin, end)` per axis and its dilations.
type Window = ([(usize, usize); 2], [usize; 2]);

impl Pool {
    /// The padding and dilations of a windowed pooling on an `h`x`w` input (`None` for the
    /// global ones).
    fn window(&self, h: usize, w: usize) -> Option<Window> {
        let dilations = match self.kind {
            Kind::Max { dilations } => dilations,
            Kind::Average { .. } => [1, 1],
            Kind::GlobalAverage | Kind::GlobalMax => return None,
        };
        let padding = self
            .padding
            .resolve([h, w], self.kernel, self.strides, dilations);
        Some((padding, dilations))
    }
}

impl Operator for Pool {
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step.float(0).filter(|x| x.rank == 4).or_no_gradient()?;
        let [n, c, h, w] = x.tensor.dims();
        let g = &step.grad.tensor;
        let dx = match self.kind {
            // Every input of a plane gets its share of the plane's gradient: written out on
            // the host (Burn's CPU backend reads a broadcast view several times slower).
            Kind::GlobalAverage if g.dims() == [n, c, 1, 1] && is_plain_cpu(&g.device()) => {
                let share = 1.0 / (h * w) as f32;
                let mut dx = vec![0.0; n * c * h * w];
                host::with_floats(g, |g| {
                    for (plane, &v) in dx.chunks_exact_mut(h * w).zip(g) {
                        plane.fill(v * share);
                    }
                })?;
                host::tensor(dx, [n, c, h, w], &g.device())
            }
            Kind::GlobalAverage if g.dims() == [n, c, 1, 1] => {
                g.clone().div_scalar((h * w) as f32).expand([n, c, h, w])
            }
            Kind::Max { .. } | Kind::Average { .. } if is_plain_cpu(&g.device()) => {
                let (padding, dilations) = self.window(h, w).or_no_gradient()?;
                let s =
                    ConvShape::pooling(c, [h, w], self.kernel, self.strides, dilations, padding);
                let [gn, gc, oh, ow] = g.dims();
                if [gn, gc] != [n, c] || s.output().is_none() {
                    return Err(OpError::NoGradient);
                }
                let dx = host::with_floats(g, |g| match self.kind {
                    Kind::Average { count_include_pad } => Ok(conv_grad::avg_pool2d_grad(
                        g,
                        n,
                        &s,
                        [oh, ow],
                        count_include_pad,
                    )),
                    _ => host::with_floats(&x.tensor, |x| {
                        conv_grad::max_pool2d_grad(x, g, n, &s, [oh, ow])
                    }),
                });
                host::tensor(dx??, [n, c, h, w], &g.device())
            }
            _ => return Err(OpError::NoGradient),
        };
        Ok(vec![Some(FloatValue::nchw(dx))])
    }

    /// The average poolings are linear; the max ones are not (see [`Operator::tangent`]).
    fn affine_in(&self, i: usize) -> bool {
        i == 0 && matches!(self.kind, Kind::Average { .. } | Kind::GlobalAverage)
    }

    /// A max pooling's output moves with its window's first maximum (the position its
    /// gradient goes to).
    fn tangent(&self, step: &Tangents) -> OpResult<FloatValue> {
        let t = step.only_first()?;
        let x = step.inputs.first().copied().flatten();
        let (Some(Value::Float(x)), Kind::Max { .. }) = (x, &self.kind) else {
            return Err(OpError::NoSecondOrder);
        };
        let [n, c, h, w] = x.tensor.dims();
        let [_, _, oh, ow] = step.float_output()?.tensor.dims();
        if x.rank != 4
            || t.tensor.dims() != x.tensor.dims()
            || self.ceil_mode
            || !is_plain_cpu(&x.tensor.device())
        {
            return Err(OpError::NoSecondOrder);
        }
        let (padding, dilations) = self.window(h, w).ok_or(OpError::NoSecondOrder)?;
        let s = ConvShape::pooling(c, [h, w], self.kernel, self.strides, dilations, padding);
        if s.output() != Some([oh, ow]) {
            return Err(OpError::NoSecondOrder);
        }
        let dy = host::with_floats(&x.tensor, |x| {
            host::with_floats(&t.tensor, |t| {
                conv_grad::max_pool2d_tangent(x, t, n, &s, [oh, ow])
            })
        })??;
        Ok(FloatValue::nchw(host::tensor(
            dy,
            [n, c, oh, ow],
            &x.tensor.device(),
        )))
    }

    /// Piecewise linear: no second derivative.
    fn curvature(&self, step: &Tangents, _grad: &FloatValue) -> OpResult<Vec<Option<FloatValue>>> {
        step.only_first()?;
        match self.kind {
            Kind::Max { .. } => Ok(vec![None]),
            _ => Err(OpError::NoSecondOrder),
        }
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = take_nchw(inputs, 0)?;
        let [n, c, h, w] = x.dims();
        if let Some((padding, dilations)) = self.window(h, w) {
            let s = ConvShape::pooling(c, [h, w], self.kernel, self.strides, dilations, padding);
            let [oh, ow] = s
                .output()
                .ok_or_else(|| does_not_fit(self.kernel, [h, w]))?;
            crate::budget::check_shape(&[n, c, oh, ow])?;
            crate::budget::check_work(n * c * oh * ow, self.kernel[0] * self.kernel[1])?;
            // Burn's pooling (and ONNX) wants each pad smaller than the window it pads.
            let [ek, ew] = [0, 1].map(|i| (self.kernel[i] - 1) * dilations[i] + 1);
            if padding[0].0.max(padding[0].1) >= ek || padding[1].0.max(padding[1].1) >= ew {
                return Err(OpError::Attribute(format!(
                    "pads {padding:?} must be smaller than the window {:?}",
                    [ek, ew]
                )));
            }
        }
        let out = match self.kind {
            Kind::GlobalAverage => x.mean_dim(3).mean_dim(2),
            Kind::GlobalMax => x.max_dim(3).max_dim(2),
            Kind::Max { dilations } => {
                let padding = self
                    .padding
                    .resolve([h, w], self.kernel, self.strides, dilations);
                if !self.ceil_mode && is_plain_cpu(&x.device()) {
                    return host_max_pool(x, self.kernel, self.strides, dilations, padding);
                }
                max_pool2d(
                    x,
                    MaxPoolOptions {
                        kernel_size: self.kernel,
                        stride: self.strides,
                        padding,
                        dilation: dilations,
                        ceil_mode: self.ceil_mode,
                    },
                )
            }
            Kind::Average { count_include_pad } => {
                let padding = self
                    .padding
                    .resolve([h, w], self.kernel, self.strides, [1, 1]);
                avg_pool2d(
                    x,
                    AvgPoolOptions {
                        kernel_size: self.kernel,
                        stride: self.strides,
                        padding,
                        count_include_pad,
                        ceil_mode: self.ceil_mode,
                    },
                )
            }
        };
        Ok(Value::Float(FloatValue::nchw(out)))
    }
}
