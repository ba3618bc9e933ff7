//! `MaxPool`, `AveragePool` (with `ceil_mode`, padding, `count_include_pad`) and the global pools.

use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::{BuildContext, OpResult, Operator, Padding, spatial2, take_nchw};
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
        spatial2(
            Some(a.ints("kernel_shape").ok_or("kernel_shape is required")?),
            1,
            "kernel_shape",
        )?
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

impl Operator for Pool {
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = take_nchw(inputs, 0)?;
        let [_, _, h, w] = x.dims();
        let out = match self.kind {
            Kind::GlobalAverage => x.mean_dim(3).mean_dim(2),
            Kind::GlobalMax => x.max_dim(3).max_dim(2),
            Kind::Max { dilations } => {
                let padding = self
                    .padding
                    .resolve([h, w], self.kernel, self.strides, dilations);
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
