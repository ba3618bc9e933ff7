//! Grad-CAM element-wise (pytorch-grad-cam's `GradCAMElementWise`): HiResCAM with the ReLU
//! taken per element, before the channel sum.

use burn::tensor::{Tensor, activation};

use crate::cam::weights::{CamInputs, CamMethod, weigh};
use crate::error::Result;

/// Grad-CAM element-wise: weighted activations `relu(g * A)`.
pub struct GradCamElementWise;

impl CamMethod for GradCamElementWise {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        Ok(activation::relu(weigh(
            inputs.gradients()?,
            inputs.activations,
        )))
    }
}
