//! Gradient helpers the operators' reverse steps share: element-wise maps over a forward value
//! and its gradient, and activations' derivatives read off their outputs.

use super::operator::OpResult;
use crate::error::OpError;
use crate::kernels::activation::Activation;
use crate::kernels::par::par_chunks;
use crate::onnx::host;
use crate::onnx::value::FloatValue;

/// The gradient of `g` through `activation`, read off its output `y` (no host gradient where
/// the output does not tell the derivative, see [`Activation::derivative_from_output`]).
pub fn activation_grad(
    activation: Activation,
    y: &FloatValue,
    g: &FloatValue,
) -> OpResult<FloatValue> {
    if !activation.derivative_from_output() {
        return Err(OpError::NoGradient);
    }
    map_grad(y, g, |y, g| g * activation.derivative_at_output(y))
}

/// Refuses a gradient `g` whose stored shape is not the forward value `v`'s.
pub fn same_shape(v: &FloatValue, g: &FloatValue) -> OpResult<()> {
    if v.tensor.dims() != g.tensor.dims() {
        return Err(OpError::Shape(format!(
            "gradient of shape {:?} for a tensor of {:?}",
            g.shape(),
            v.shape()
        )));
    }
    Ok(())
}

/// The gradient `f(v, g)` computed on the host from all values of a forward tensor `v` and
/// of the gradient `g` of the same shape, handed out in `g`'s shape.
pub fn host_gradient(
    v: &FloatValue,
    g: &FloatValue,
    f: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
) -> OpResult<FloatValue> {
    same_shape(v, g)?;
    let out = host::with_floats(&v.tensor, |v| host::with_floats(&g.tensor, |g| f(v, g)))??;
    Ok(g.with_tensor(host::tensor(out, g.tensor.dims(), &g.tensor.device())))
}

/// `f(v, g)` for every value `v` of a forward tensor and `g` of the gradient of the same shape,
/// on the host.
pub fn map_grad(
    v: &FloatValue,
    g: &FloatValue,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> OpResult<FloatValue> {
    host_gradient(v, g, |v, g| {
        let mut out = vec![0.0f32; g.len()];
        // Blocks of 64 Ki values spread over the threads.
        const BLOCK: usize = 1 << 16;
        par_chunks(&mut out, BLOCK, |i, o| {
            let (v, g) = (&v[i * BLOCK..], &g[i * BLOCK..]);
            for ((o, &v), &g) in o.iter_mut().zip(v).zip(g) {
                *o = f(v, g);
            }
        });
        out
    })
}
