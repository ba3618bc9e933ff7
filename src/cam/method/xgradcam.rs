//! XGrad-CAM (Fu et al., 2020): gradients weighted by normalised activations (eps = 1e-7).

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;

/// XGrad-CAM weights: `sum_uv g * A / (sum_uv A + eps)`.
pub struct XGradCam;

impl CamMethod for XGradCam {
    fn channel_weights(&self, inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        let a = inputs.activations;
        let sum_a = a.clone().sum_dim(3).sum_dim(2).add_scalar(1e-7);
        let weights = inputs
            .gradients()?
            .mul(a.clone())
            .div(sum_a)
            .sum_dim(3)
            .sum_dim(2);
        Ok(Some(weights))
    }
}
