//! `Conv` (2-D, with groups, dilation, explicit or automatic padding).

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::{BuildContext, OpResult, Operator, Padding, float_input, nchw_input, spatial2};
use crate::onnx::value::{FloatValue, Value};

struct Conv {
    strides: [usize; 2],
    dilations: [usize; 2],
    groups: usize,
    padding: Padding,
}

/// Builds a `Conv` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let groups = a.int("group", 1);
    if groups < 1 {
        return Err(format!("group {groups} must be positive"));
    }
    if let Some(k) = a.ints("kernel_shape")
        && k.len() != 2
    {
        return Err(format!(
            "kernel_shape {k:?}: only 2-D convolutions are supported"
        ));
    }
    Ok(Box::new(Conv {
        strides: spatial2(a.ints("strides"), 1, "strides")?,
        dilations: spatial2(a.ints("dilations"), 1, "dilations")?,
        groups: groups as usize,
        padding: Padding::from_attrs(&a)?,
    }))
}

impl Operator for Conv {
    fn run(&self, inputs: &[Option<Value>]) -> OpResult<Value> {
        let x = nchw_input(inputs, 0)?;
        let w = nchw_input(inputs, 1)?;
        let bias = match inputs.get(2) {
            Some(Some(_)) => {
                let b = float_input(inputs, 2)?;
                let n = b.shape().iter().product::<usize>();
                Some(b.tensor.reshape([n]))
            }
            _ => None,
        };
        let [_, cin, h, wd] = x.dims();
        let [cout, cin_g, kh, kw] = w.dims();
        if cin_g * self.groups != cin || cout % self.groups != 0 {
            return Err(format!(
                "weight [{cout}, {cin_g}, {kh}, {kw}] with group {} does not fit an input with {cin} channels",
                self.groups
            ));
        }
        let padding = self
            .padding
            .resolve([h, wd], [kh, kw], self.strides, self.dilations);
        let options = ConvOptions {
            stride: self.strides,
            padding,
            dilation: self.dilations,
            groups: self.groups,
        };
        Ok(Value::Float(FloatValue::nchw(conv2d(x, w, bias, options))))
    }
}
