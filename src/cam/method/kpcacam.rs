//! KPCA-CAM (Karmani et al., 2024), as pytorch-grad-cam's `KPCA_CAM` computes it by default:
//! the first kernel principal component of the activations, sigmoid kernel, no gradient and no
//! target ([`project_kernel`](crate::cam::principal::project_kernel)).

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, Projection};
use crate::error::Result;

/// KPCA-CAM: the activations, kernel-projected.
pub struct KpcaCam;

impl CamMethod for KpcaCam {
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
        Some(Projection::KernelSigmoid)
    }
}
