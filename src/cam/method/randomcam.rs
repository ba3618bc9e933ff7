//! RandomCAM (pytorch-grad-cam's sanity baseline): channel weights drawn uniformly from
//! [-1, 1]. igcam draws them from its documented generator
//! ([`uniforms`](crate::cam::random::uniforms)) with the request's seed, made distinct
//! for each target and chunk of path points, so `--seed` reproduces them.

use burn::tensor::Tensor;

use crate::cam::random::uniforms;
use crate::cam::weights::{CamInputs, CamMethod, weigh_host};
use crate::error::Result;

/// RandomCAM weights: `U(-1, 1)` per point and channel.
pub struct RandomCam;

impl CamMethod for RandomCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        let a = inputs.activations;
        let [points, channels, _, _] = a.dims();
        let weights = uniforms(inputs.seed, points * channels, [-1.0, 1.0]);
        Ok(weigh_host(weights, a))
    }

    fn uses_gradients(&self) -> bool {
        false
    }
}
