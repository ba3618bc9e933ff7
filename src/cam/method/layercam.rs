//! LayerCAM (Jiang et al., 2021): element-wise weights, the positive part of the gradient.

use burn::tensor::{Tensor, activation};

use crate::cam::weights::{CamInputs, CamMethod, weigh};
use crate::error::Result;

/// LayerCAM weights: `relu(g)` per element.
pub struct LayerCam;

impl CamMethod for LayerCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        Ok(weigh(
            activation::relu(inputs.gradients()?),
            inputs.activations,
        ))
    }
}
