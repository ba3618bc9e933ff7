//! Grad-CAM (Selvaraju et al., 2017): channel weight = spatial mean of the gradient.

use burn::tensor::Tensor;

use crate::cam::weights::CamMethod;

/// Grad-CAM weights: `mean_uv(dS_c/dA_k)`.
pub struct GradCam;

impl CamMethod for GradCam {
    fn weights(&self, _activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4> {
        gradients.mean_dim(3).mean_dim(2)
    }
}
