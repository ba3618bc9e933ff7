//! Eigen-CAM (Muhammad & Yeasin, 2020): the first principal component of the activations, no
//! gradient and no target (one map serves every class).

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, Projection};
use crate::error::Result;

/// Eigen-CAM: the activations themselves, projected.
pub struct EigenCam;

impl CamMethod for EigenCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        Ok(inputs.activations.clone())
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn uses_target(&self) -> bool {
        false
    }

    fn projection(&self) -> Option<Projection> {
        Some(Projection::Principal)
    }
}
