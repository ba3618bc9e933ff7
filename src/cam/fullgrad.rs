//! FullGrad (Srinivas & Fleuret, NeurIPS 2019) as pytorch-grad-cam's `FullGrad` computes it:
//! `|x * dS/dx|` per colour channel, plus, for every convolution and batch normalisation that
//! adds a bias to a 4-D output, `|b_c * dS/dz_c|` per channel; every channel min-max scaled
//! on its own and resized bilinearly to the input, all summed, and the sum min-max scaled.
//! There is no explained layer: the map is at the input's resolution. On an ONNX export a
//! batch normalisation is usually folded into the convolution before it, whose bias is then the
//! normalisation's (the same function when the convolution had none, as in torchvision's nets).
//!
//! With eigen-smoothing (pytorch-grad-cam's `eigen_smooth` for FullGrad), the parts are not
//! summed: the three input channels and each layer's map, every one min-max scaled and resized
//! to an eighth of the input, are projected on their first principal component (igcam's sign
//! rule, [`super::principal`]), which is scaled and resized back to the input.

use burn::tensor::Tensor;

use super::CamMap;
use super::principal::projection;
use super::scaled::{scale, scaled_to};
use crate::error::Result;
use crate::onnx::{BiasGradients, host_values};
use crate::render::upsample_bilinear;

/// The FullGrad map of one image `x` (`[1, C, H, W]`) from its [`BiasGradients`], at `H x W`,
/// scaled to `[0, 1]`; eigen-smoothed when `eigen_smooth`.
pub fn fullgrad_map(x: &Tensor<4>, gradients: BiasGradients, eigen_smooth: bool) -> Result<CamMap> {
    let [_, channels, height, width] = x.dims();
    let plane = height * width;
    let pixels = host_values(x.clone().mul(gradients.input))?;
    // The parts pytorch-grad-cam stacks: each input channel, then each biased layer.
    let mut parts: Vec<Vec<f32>> = Vec::with_capacity(channels + gradients.layers.len());
    for c in 0..channels {
        let magnitudes: Vec<f32> = pixels[c * plane..(c + 1) * plane]
            .iter()
            .map(|v| v.abs())
            .collect();
        parts.push(scale(&magnitudes));
    }
    for (bias, grad) in gradients.layers {
        let [_, _, h, w] = grad.dims();
        let grad = host_values(grad)?;
        // Each channel scaled on its own, summed at the layer's resolution and resized once:
        // the resize is linear and keeps constants, so this is pytorch-grad-cam's resize of
        // every channel followed by the sum.
        let mut summed = vec![0.0f32; h * w];
        for (c, &b) in bias.iter().enumerate() {
            let magnitudes: Vec<f32> = grad[c * h * w..(c + 1) * h * w]
                .iter()
                .map(|g| (b * g).abs())
                .collect();
            add(&mut summed, &scale(&magnitudes));
        }
        let layer = CamMap {
            height: h,
            width: w,
            values: summed,
        };
        parts.push(upsample_bilinear(&layer, height, width).values);
    }
    if eigen_smooth {
        return Ok(eigen_smoothed(&parts, [height, width]));
    }
    let mut total = vec![0.0f32; plane];
    for part in &parts {
        add(&mut total, part);
    }
    Ok(CamMap {
        height,
        width,
        values: scale(&total),
    })
}

/// pytorch-grad-cam's FullGrad eigen-smoothing of the `parts` (each `height x width`): each
/// scaled and resized to an eighth, projected on the first principal component, the projection
/// scaled and resized back, and scaled once more (its aggregation).
fn eigen_smoothed(parts: &[Vec<f32>], [height, width]: [usize; 2]) -> CamMap {
    let small = [(height / 8).max(1), (width / 8).max(1)];
    let mut stacked = Vec::with_capacity(parts.len() * small[0] * small[1]);
    for part in parts {
        let map = CamMap {
            height,
            width,
            values: part.clone(),
        };
        stacked.extend(scaled_to(&map, small).values);
    }
    let projected = CamMap {
        height: small[0],
        width: small[1],
        values: projection(&stacked, parts.len(), small[0] * small[1]),
    };
    let back = scaled_to(&projected, [height, width]);
    CamMap {
        height,
        width,
        values: scale(&back.values),
    }
}

/// `total += part`, element by element.
fn add(total: &mut [f32], part: &[f32]) {
    total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
}
