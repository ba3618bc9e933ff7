//! Pixel-level Integrated Gradients (Sundararajan et al., 2017) on the same path and baseline:
//! `IG = (x - b) * (1/m) * sum_i dS_c(x_i)/dx`, summed over colour channels.

use burn::tensor::Tensor;

use super::integrate::PathRun;
use super::{CamMap, Progress};
use crate::error::Result;

/// Integrated Gradients attribution map at input resolution.
pub fn integrated_gradients(run: &PathRun, progress: &mut Progress) -> Result<CamMap> {
    let mut total: Option<Tensor<4>> = None;
    run.for_each_chunk(progress, |points| {
        let leaf = points.autodiff().require_grad();
        let logits = run.model.forward(leaf.clone())?;
        let g = run.target_gradient(logits, &leaf)?.sum_dim(0);
        total = Some(match total.take() {
            Some(t) => t.add(g),
            None => g,
        });
        Ok(())
    })?;
    let mean_grad = total
        .expect("at least one chunk")
        .div_scalar(run.alphas.len() as f32);
    let attribution = run
        .input
        .clone()
        .sub(run.baseline.clone())
        .mul(mean_grad)
        .sum_dim(1);
    CamMap::from_tensor(attribution)
}
