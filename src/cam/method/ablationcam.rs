//! Ablation-CAM (Desai & Ramaswamy, WACV 2020), as pytorch-grad-cam's `AblationCAM` computes
//! it: channel `k`'s weight is the relative drop of the target's score when channel `k` of the
//! layer is ablated, `(S - S_k) / S`. An ablated channel is set to 0 where the layer's minimum
//! is 0 (after a ReLU), else to that minimum minus 1e7 (pytorch-grad-cam's rule for layers that
//! go negative). Only the rest of the graph after the layer runs again, once per channel
//! (pytorch-grad-cam runs the whole network each time).

use burn::tensor::{Tensor, TensorData};

use crate::cam::weights::{CamInputs, CamMethod, weigh_host};
use crate::error::Result;
use crate::onnx::host_values;

/// Values per batch of ablated copies sent through the head.
const CHUNK_VALUES: usize = 16 << 20;

/// The ablated value pytorch-grad-cam uses below a layer's minimum when that minimum is not 0.
const BELOW_MINIMUM: f32 = 1e7;

/// Ablation-CAM weights: `(S - S_k) / S` per channel.
pub struct AblationCam;

impl CamMethod for AblationCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        let a = inputs.activations;
        let [points, channels, h, w] = a.dims();
        let chunk = (CHUNK_VALUES / (channels * h * w).max(1)).clamp(1, channels.max(1));
        let mut weights = Vec::with_capacity(points * channels);
        for point in 0..points {
            let one = a.clone().narrow(0, point, 1);
            let original = inputs.head.scores(point, one.clone())?[0];
            let minimum = host_values(one.clone().min())?[0];
            let ablated_value = if minimum == 0.0 {
                0.0
            } else {
                minimum - BELOW_MINIMUM
            };
            let mut first = 0;
            while first < channels {
                let n = chunk.min(channels - first);
                let keep = keep_mask(first, n, channels);
                let keep =
                    Tensor::<4>::from_data(TensorData::new(keep, [n, channels, 1, 1]), &a.device());
                let copies = one.clone().repeat_dim(0, n);
                let drop = keep.clone().neg().add_scalar(1.0).mul_scalar(ablated_value);
                let scores = inputs.head.scores(point, copies.mul(keep).add(drop))?;
                weights.extend(scores.iter().map(|s| (original - s) / original));
                first += n;
            }
        }
        Ok(weigh_host(weights, a))
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn reads_back(&self) -> bool {
        true
    }
}

/// `[n, channels]` ones with a zero at channel `first + j` of copy `j`.
fn keep_mask(first: usize, n: usize, channels: usize) -> Vec<f32> {
    let mut keep = vec![1.0; n * channels];
    for j in 0..n {
        keep[j * channels + first + j] = 0.0;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_copy_ablates_its_own_channel() {
        assert_eq!(keep_mask(1, 2, 3), [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
    }
}
