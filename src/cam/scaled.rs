//! Maps scaled as pytorch-grad-cam returns them (`scale_cam_image`), for the results it
//! averages: aug-smoothing's six inputs and several layers' maps.

use super::CamMap;
use crate::render::upsample_bilinear_add;

/// pytorch-grad-cam's `scale_cam_image(map, target_size)`: min-max scaled at its own
/// resolution, then resized bilinearly to `height` x `width`.
pub fn scaled_to(map: &CamMap, [height, width]: [usize; 2]) -> CamMap {
    let mut values = vec![0.0; height * width];
    add_scaled_to(map, [height, width], &mut values);
    CamMap {
        height,
        width,
        values,
    }
}

/// [`scaled_to`]'s values added into `out` (`height` x `width` of them): several layers'
/// maps summed at the input's size without a buffer each.
pub fn add_scaled_to(map: &CamMap, [height, width]: [usize; 2], out: &mut [f32]) {
    // A constant map scales to zeros (a detection's map at a scale its score does not read).
    if let Some(&first) = map.values.first()
        && first.is_finite()
        && map.values.iter().all(|&v| v == first)
    {
        return;
    }
    let scaled = CamMap {
        values: scale(&map.values),
        height: map.height,
        width: map.width,
    };
    upsample_bilinear_add(&scaled, height, width, out);
}

/// pytorch-grad-cam's `scale_cam_image` without the resize: `(v - min) / (1e-7 + max(v - min))`.
pub fn scale(values: &[f32]) -> Vec<f32> {
    let mut out = values.to_vec();
    scale_in_place(&mut out);
    out
}

/// [`scale`] in place.
pub fn scale_in_place(values: &mut [f32]) {
    let min = lanewise(
        values,
        f32::INFINITY,
        |l, v| if v < l { v } else { l },
        f32::min,
    );
    let max = lanewise(
        values,
        0.0,
        |l, v| if v - min > l { v - min } else { l },
        f32::max,
    );
    values
        .iter_mut()
        .for_each(|v| *v = (*v - min) / (1e-7 + max));
}

/// Folds `values` into 16 lanes with `step` (each lane from `init`), then the lanes and the
/// values left over with `join`: a reduction the compiler can vectorise, which a fold of
/// `f32::min` over the values one after another is not (a map at a 640 x 640 input is 410k
/// of them). `step` skips a NaN as `f32::min` and `f32::max` do (its comparison is false).
fn lanewise(
    values: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    join: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut lanes = [init; 16];
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, v);
        }
    }
    let folded = lanes.into_iter().fold(init, &join);
    rest.iter().fold(folded, |m, &v| join(m, step(init, v)))
}

/// The mean of maps of one shape (at least one).
pub fn mean(maps: &[CamMap]) -> CamMap {
    let mut out = maps[0].clone();
    for m in &maps[1..] {
        for (o, v) in out.values.iter_mut().zip(&m.values) {
            *o += v;
        }
    }
    let n = maps.len() as f32;
    out.values.iter_mut().for_each(|v| *v /= n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scale_in_place` as it was written before the lanes: a fold over the values in order.
    fn scaled_in_order(values: &[f32]) -> Vec<f32> {
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().fold(0.0, |m: f32, v| m.max(v - min));
        values.iter().map(|v| (v - min) / (1e-7 + max)).collect()
    }

    #[test]
    fn lanes_scale_as_a_fold_in_order_does() {
        for len in [0, 1, 15, 16, 17, 33, 410] {
            let values: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 113) as f32 * 0.37 - 9.0)
                .collect();
            let mut got = values.clone();
            scale_in_place(&mut got);
            assert_eq!(got, scaled_in_order(&values), "{len} values");
        }
        // A NaN is skipped by the minimum and the maximum, and stays NaN.
        let values = [3.0, f32::NAN, -1.0, 5.0];
        let mut got = values.to_vec();
        scale_in_place(&mut got);
        assert_eq!(got[0], 4.0 / (1e-7 + 6.0));
        assert!(got[1].is_nan());
        assert_eq!(got[2], 0.0);
    }

    #[test]
    fn a_constant_map_adds_nothing() {
        let map = CamMap {
            height: 2,
            width: 2,
            values: vec![0.5; 4],
        };
        let mut out = vec![1.0; 16];
        add_scaled_to(&map, [4, 4], &mut out);
        assert_eq!(out, vec![1.0; 16]);
    }
}
