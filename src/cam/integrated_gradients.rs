//! Pixel-level Integrated Gradients (Sundararajan et al., 2017) on the same path and baseline:
//! `IG = (x - b) * (1/m) * sum_i dS_c(x_i)/dx`, summed over colour channels.

use burn::tensor::Tensor;

use super::integrate::PathRun;
use crate::error::Result;

/// One chunk of the path: the summed input gradients `[1, C, H, W]` of the points, on the device.
pub(crate) fn ig_chunk(run: &PathRun, points: Tensor<4>) -> Result<Tensor<4>> {
    let leaf = points.autodiff().require_grad();
    let logits = run.model.forward(leaf.clone())?;
    Ok(run.target_gradient(logits, &leaf)?.sum_dim(0))
}

/// The attribution map `[1, 1, H, W]` from the gradients summed over the whole path.
pub(crate) fn ig_finish(run: &PathRun, gradient_sum: Tensor<4>) -> Tensor<4> {
    let mean_grad = gradient_sum.div_scalar(run.alphas.len() as f32);
    run.input
        .clone()
        .sub(run.baseline.clone())
        .mul(mean_grad)
        .sum_dim(1)
}
