//! ShapleyCAM (Cai, 2025, arXiv:2501.06261): Grad-CAM's weights corrected by the second-order
//! term of a Shapley-value expansion of the score, `mean_uv(g - ½ H·A)`, with `H·A` the
//! Hessian of the score at the layer times the activations (pytorch-grad-cam's `ShapleyCAM`,
//! which takes it by double backward). igcam computes `H·A` by forward mode over its own
//! reverse pass ([`crate::onnx`]'s Hessian-vector product), on the CPU backend.

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;

/// ShapleyCAM weights: `mean_uv(dS_c/dA_k - ½ (H A)_k)`.
pub struct ShapleyCam;

impl CamMethod for ShapleyCam {
    fn channel_weights(&self, inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        let product = inputs.head.hessian_product(inputs.activations)?;
        let weights = inputs
            .gradients()?
            .sub(product.mul_scalar(0.5))
            .mean_dim(3)
            .mean_dim(2);
        Ok(Some(weights))
    }

    /// The product runs on the host kernels, reading the layer back mid-request.
    fn reads_back(&self) -> bool {
        true
    }

    fn cpu_only(&self) -> bool {
        true
    }
}
