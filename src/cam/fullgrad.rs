//! FullGrad (Srinivas & Fleuret, NeurIPS 2019) as pytorch-grad-cam's `FullGrad` computes it:
//! `|x * dS/dx|` per colour channel, plus, for every convolution and batch normalisation that
//! adds a bias to a 4-D output, `|b_c * dS/dz_c|` per channel; every channel min-max scaled
//! on its own and resized bilinearly to the input, all summed, and the sum min-max scaled.
//! There is no explained layer: the map is at the input's resolution. On an ONNX export a
//! batch normalisation is usually folded into the convolution before it, whose bias is then the
//! normalisation's (the same function when the convolution had none, as in torchvision's nets).

use burn::tensor::Tensor;

use super::CamMap;
use super::scaled::scale;
use crate::error::Result;
use crate::onnx::{BiasGradients, host_values};
use crate::render::upsample_bilinear;

/// The FullGrad map of one image `x` (`[1, C, H, W]`) from its [`BiasGradients`], at `H x W`,
/// scaled to `[0, 1]`.
pub fn fullgrad_map(x: &Tensor<4>, gradients: BiasGradients) -> Result<CamMap> {
    let [_, channels, height, width] = x.dims();
    let plane = height * width;
    let pixels = host_values(x.clone().mul(gradients.input))?;
    let mut total = vec![0.0f32; plane];
    for c in 0..channels {
        let magnitudes: Vec<f32> = pixels[c * plane..(c + 1) * plane]
            .iter()
            .map(|v| v.abs())
            .collect();
        add(&mut total, &scale(&magnitudes));
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
        add(&mut total, &upsample_bilinear(&layer, height, width).values);
    }
    Ok(CamMap {
        height,
        width,
        values: scale(&total),
    })
}

/// `total += part`, element by element.
fn add(total: &mut [f32], part: &[f32]) {
    total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
}
