//! Grad-CAM (Selvaraju et al., 2017): channel weight = spatial mean of the gradient.

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, weigh};
use crate::error::Result;

/// Grad-CAM weights: `mean_uv(dS_c/dA_k)`.
pub struct GradCam;

impl CamMethod for GradCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        let weights = inputs.gradients()?.mean_dim(3).mean_dim(2);
        Ok(weigh(weights, inputs.activations))
    }
}
