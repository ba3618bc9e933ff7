//! FEM, the Feature Explanation Method (Ahmed Asif Fuad et al., 2023), as pytorch-grad-cam's
//! `FEM` computes it: channel `k`'s weight is the share of positions where `A_k` exceeds its
//! mean by more than `k = 2` standard deviations (population). No gradient and no target.

use burn::tensor::Tensor;

use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;

/// pytorch-grad-cam's `k` of the k-sigma rule.
const SIGMAS: f32 = 2.0;

/// FEM weights: `mean_uv[A_k > mean_uv(A_k) + 2 std_uv(A_k)]`.
pub struct Fem;

impl CamMethod for Fem {
    fn channel_weights(&self, inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        let a = inputs.activations;
        let mean = a.clone().mean_dim(3).mean_dim(2);
        let centred = a.clone().sub(mean.clone());
        let std = centred.clone().mul(centred).mean_dim(3).mean_dim(2).sqrt();
        let threshold = mean.add(std.mul_scalar(SIGMAS));
        let above = a.clone().greater(threshold).float();
        Ok(Some(above.mean_dim(3).mean_dim(2)))
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn uses_target(&self) -> bool {
        false
    }

    fn takes_eigen_smooth(&self) -> bool {
        false
    }
}
