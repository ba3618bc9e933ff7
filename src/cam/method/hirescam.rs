//! HiResCAM (Draelos & Carin, 2020): the gradient times the activation, element by element,
//! summed over channels (pytorch-grad-cam's `HiResCAM`).

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod, weigh};
use crate::error::Result;

/// HiResCAM: weighted activations `g * A`.
pub struct HiResCam;

impl CamMethod for HiResCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        Ok(weigh(inputs.gradients()?, inputs.activations))
    }
}
