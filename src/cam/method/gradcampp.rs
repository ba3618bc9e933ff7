//! Grad-CAM++ (Chattopadhay et al., 2018), with pytorch-grad-cam's closed form for the
//! per-pixel coefficients (eps = 1e-6).

use burn::tensor::{Tensor, activation};

use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;

/// Grad-CAM++ weights: `sum_uv relu(g) * g^2 / (2 g^2 + sum_uv(A) * g^3 + eps)`.
pub struct GradCamPlusPlus;

impl CamMethod for GradCamPlusPlus {
    fn channel_weights(&self, inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        let gradients = inputs.gradients()?;
        let g2 = gradients.clone().mul(gradients.clone());
        let g3 = g2.clone().mul(gradients.clone());
        let sum_a = inputs.activations.clone().sum_dim(3).sum_dim(2);
        let alpha = g2
            .clone()
            .div(g2.mul_scalar(2.0).add(g3.mul(sum_a)).add_scalar(1e-6));
        Ok(Some(
            activation::relu(gradients).mul(alpha).sum_dim(3).sum_dim(2),
        ))
    }
}
