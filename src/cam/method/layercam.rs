//! LayerCAM (Jiang et al., 2021): element-wise weights, the positive part of the gradient.

use burn::tensor::{Tensor, activation};

use crate::cam::weights::CamMethod;

/// LayerCAM weights: `relu(g)` per element.
pub struct LayerCam;

impl CamMethod for LayerCam {
    fn weights(&self, _activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4> {
        activation::relu(gradients)
    }
}
