//! Grad-CAM (Selvaraju et al., 2017): channel weight = spatial mean of the gradient.

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;

/// Grad-CAM weights: `mean_uv(dS_c/dA_k)`.
pub struct GradCam;

impl CamMethod for GradCam {
    fn channel_weights(&self, inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        Ok(Some(inputs.gradient_means()?))
    }
}
