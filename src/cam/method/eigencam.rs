//! Eigen-CAM (Muhammad & Yeasin, 2020) and KPCA-CAM (Karmani et al., 2024): a projection of the
//! activations themselves — their first principal component, or their first kernel principal
//! component (sigmoid kernel, as pytorch-grad-cam's `KPCA_CAM` calls scikit-learn's
//! `KernelPCA`) — with no gradient and no target (one map serves every class).

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, Projection};
use crate::error::Result;

/// The activations, projected: Eigen-CAM with [`Projection::Principal`], KPCA-CAM with
/// [`Projection::KernelSigmoid`].
pub struct ActivationProjection(pub Projection);

impl CamMethod for ActivationProjection {
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
        Some(self.0)
    }
}
