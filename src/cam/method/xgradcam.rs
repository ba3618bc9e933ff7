//! XGrad-CAM (Fu et al., 2020): gradients weighted by normalised activations (eps = 1e-7).

use burn::tensor::Tensor;

use crate::cam::weights::CamMethod;

/// XGrad-CAM weights: `sum_uv g * A / (sum_uv A + eps)`.
pub struct XGradCam;

impl CamMethod for XGradCam {
    fn weights(&self, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4> {
        let sum_a = activations.clone().sum_dim(3).sum_dim(2).add_scalar(1e-7);
        gradients.mul(activations).div(sum_a).sum_dim(3).sum_dim(2)
    }
}
