//! Pixel-level Integrated Gradients (Sundararajan et al., 2017) on the same path and baseline:
//! `IG = (x - b) * (1/m) * sum_i dS_c(x_i)/dx`, summed over colour channels.

use super::integrate::PathRun;
use super::{CamMap, Progress};
use crate::error::Result;

/// Integrated Gradients attribution map at input resolution.
pub fn integrated_gradients(run: &PathRun, progress: &mut Progress) -> Result<CamMap> {
    let total = run.sum_over_path(progress, |points| {
        let leaf = points.autodiff().require_grad();
        let logits = run.model.forward(leaf.clone())?;
        Ok(run.target_gradient(logits, &leaf)?.sum_dim(0))
    })?;
    let mean_grad = total.div_scalar(run.alphas.len() as f32);
    let attribution = run
        .input
        .clone()
        .sub(run.baseline.clone())
        .mul(mean_grad)
        .sum_dim(1);
    CamMap::from_tensor(attribution)
}
