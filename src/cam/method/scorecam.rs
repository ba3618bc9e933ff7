//! Score-CAM (Wang et al., CVPR-W 2020), as pytorch-grad-cam's `ScoreCAM` computes it: each
//! channel, upsampled to the input (bilinear, corners aligned) and min-max scaled to [0, 1],
//! masks the input; the target's logits on the `K` masked inputs, through a softmax over the
//! channels, are the channel weights. `K` forward passes of the whole network per path point.

use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::cam::weights::{CamInputs, CamMethod, weigh_host};
use crate::error::Result;

/// Score-CAM weights: `softmax_k S_c(x * norm(up(A_k)))`.
pub struct ScoreCam;

impl CamMethod for ScoreCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        let a = inputs.activations;
        let [points, channels, _, _] = a.dims();
        let mut weights = Vec::with_capacity(points * channels);
        for point in 0..points {
            let image = inputs.head.image(point);
            let [_, _, height, width] = image.dims();
            let mut options = InterpolateOptions::new(InterpolateMode::Bilinear);
            options.align_corners = true;
            options.output_size = Some([height, width]);
            let mut scores = Vec::with_capacity(channels);
            let mut first = 0;
            while first < channels {
                let n = inputs.head.chunk().min(channels - first);
                let maps = a.clone().narrow(0, point, 1).narrow(1, first, n);
                let up = interpolate(maps, options.clone()).reshape([n, 1, height * width]);
                let max = up.clone().max_dim(2);
                let min = up.clone().min_dim(2);
                let masks = up
                    .sub(min.clone())
                    .div(max.sub(min).add_scalar(1e-8))
                    .reshape([n, 1, height, width]);
                scores.extend(inputs.head.image_scores(image.clone().mul(masks))?);
                first += n;
            }
            weights.extend(softmax(&scores));
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

/// The softmax of `scores`, in f64.
fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = scores.iter().map(|&s| (s as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_shift_free_and_sums_to_one() {
        let w = softmax(&[1000.0, 1000.5]);
        let e = 0.5f32.exp();
        let want = [1.0 / (1.0 + e), e / (1.0 + e)];
        assert!(
            (w[0] - want[0]).abs() < 1e-6 && (w[1] - want[1]).abs() < 1e-6,
            "{w:?}"
        );
    }
}
