//! EigenGrad-CAM (pytorch-grad-cam's `EigenGradCAM`): the first principal component of the
//! gradient times the activation.

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, Projection, weigh};
use crate::error::Result;

/// EigenGrad-CAM: `g * A`, projected.
pub struct EigenGradCam;

impl CamMethod for EigenGradCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        Ok(weigh(inputs.gradients()?, inputs.activations))
    }

    fn projection(&self) -> Option<Projection> {
        Some(Projection::Principal)
    }
}
