//! `BatchNormalization` in inference mode, folded at load time into `x * scale + shift`.

use burn::tensor::{Tensor, TensorData};

use super::{BuildContext, OpResult, Operator, take_float};
use crate::onnx::value::{MAX_RANK, Value};

struct BatchNorm {
    channels: usize,
    /// `gamma / sqrt(var + eps)` per channel.
    scale: Tensor<1>,
    /// `beta - mean * scale` per channel.
    shift: Tensor<1>,
}

fn host(ctx: &BuildContext, i: usize, what: &str) -> OpResult<Vec<f64>> {
    let v = ctx.constant_input(i).ok_or_else(|| {
        format!("{what} must be a constant initialiser (export the model in eval mode)")
    })?;
    Ok(v.iter().copied().map(f64::from).collect())
}

/// Builds a `BatchNormalization` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let eps = f64::from(ctx.attrs().float("epsilon", 1e-5));
    let gamma = host(ctx, 1, "scale")?;
    let beta = host(ctx, 2, "bias")?;
    let mean = host(ctx, 3, "mean")?;
    let var = host(ctx, 4, "var")?;
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c, c, c] {
        return Err("scale, bias, mean and var must have the same length".into());
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
        shift: Tensor::<1>::from_data(TensorData::new(shift, [c]), ctx.device),
    }))
}

impl Operator for BatchNorm {
    fn affine_in(&self, i: usize) -> bool {
        i == 0
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let mut x = take_float(inputs, 0)?;
        let shape = x.shape();
        let c = self.channels;
        if x.rank < 2 || shape[1] != c {
            return Err(format!(
                "input shape {shape:?} does not have {c} channels on axis 1"
            ));
        }
        let mut dims = [1usize; MAX_RANK];
        dims[MAX_RANK - x.rank + 1] = c;
        let scale = self.scale.clone().reshape(dims);
        let shift = self.shift.clone().reshape(dims);
        x.tensor = x.tensor.mul(scale).add(shift);
        Ok(Value::Float(x))
    }
}
