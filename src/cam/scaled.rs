//! Maps scaled as pytorch-grad-cam returns them (`scale_cam_image`), for the results it
//! averages: aug-smoothing's six inputs and several layers' maps.

use super::CamMap;
use crate::kernels::map_scale;
use crate::render::Upsampling;

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
    if let Some(resized) = scaled_resizer(map, [height, width]) {
        for (y, out) in out.chunks_exact_mut(width).take(height).enumerate() {
            resized.write_row(y, out, true);
        }
    }
}

/// `map` min-max scaled at its own resolution, ready to be resized to `height` x `width` a
/// row at a time; `None` for an empty or constant map, which adds nothing (a constant map
/// scales to zeros: a detection's map at a scale its score does not read).
fn scaled_resizer(map: &CamMap, [height, width]: [usize; 2]) -> Option<Upsampling> {
    if map.height == 0 || map.width == 0 || width == 0 || constant(map) {
        return None;
    }
    let scaled = CamMap {
        values: scale(&map.values),
        height: map.height,
        width: map.width,
    };
    Some(Upsampling::new(&scaled, height, width))
}

/// pytorch-grad-cam's mean over several target layers (`aggregate_multi_layers`): each
/// layer's map as [`scaled_to`] makes it, their sum divided by `layers` (the maps' count),
/// scaled again as [`scale_in_place`] does, bit for bit; each value written once, where
/// adding map by map into a zeroed buffer, dividing and scaling took seven passes over it (a
/// detector's dozens of detections are each a few maps at 640 x 640).
pub fn layer_mean(maps: &[&CamMap], [height, width]: [usize; 2], layers: f32) -> Vec<f32> {
    let resized: Vec<Upsampling> = maps
        .iter()
        .filter_map(|m| scaled_resizer(m, [height, width]))
        .collect();
    let mut out = Vec::with_capacity(height * width);
    let mut extremes = (f32::INFINITY, f32::NEG_INFINITY);
    for y in 0..height {
        let start = out.len();
        // A row at a time (zeroing it costs nothing in the cache), each map blended into it,
        // its extremes taken while it is there.
        out.resize(start + width, 0.0);
        let row = &mut out[start..];
        for (i, m) in resized.iter().enumerate() {
            m.write_row(y, row, i > 0);
        }
        extremes = map_scale::join_extremes(extremes, map_scale::extremes(row));
    }
    map_scale::scale_mean_within(&mut out, layers, extremes);
    out
}

/// A map whose values are all one finite value: it scales to zeros (a detection's map at a
/// scale its score does not read).
fn constant(map: &CamMap) -> bool {
    map.values
        .first()
        .is_some_and(|&first| first.is_finite() && map.values.iter().all(|&v| v == first))
}

/// pytorch-grad-cam's `scale_cam_image` without the resize: `(v - min) / (1e-7 + max(v - min))`.
pub fn scale(values: &[f32]) -> Vec<f32> {
    let mut out = values.to_vec();
    scale_in_place(&mut out);
    out
}

/// [`scale`] in place (a mean of one map, scaled).
pub fn scale_in_place(values: &mut [f32]) {
    map_scale::scale_mean(values, 1.0);
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
    fn the_layer_mean_is_the_sum_of_scaled_maps_divided_and_scaled_bit_for_bit() {
        let map = |height: usize, width: usize, seed: usize| CamMap {
            height,
            width,
            values: (0..height * width)
                .map(|i| ((i * 7919 + seed * 31) % 97) as f32 * 0.013 - 0.4)
                .collect(),
        };
        let flat = CamMap {
            height: 5,
            width: 5,
            values: vec![0.25; 25],
        };
        let (fine, mid, coarse) = (map(20, 16, 1), map(10, 8, 2), map(5, 4, 3));
        for (maps, size) in [
            (vec![&fine, &mid, &coarse], [160, 128]),
            (vec![&coarse, &flat, &fine], [37, 29]),
            (vec![&mid], [10, 8]),
            (vec![&flat, &flat], [12, 12]),
        ] {
            let layers = maps.len() as f32;
            let mut want = vec![0.0; size[0] * size[1]];
            for m in &maps {
                add_scaled_to(m, size, &mut want);
            }
            want.iter_mut().for_each(|v| *v /= layers);
            scale_in_place(&mut want);
            let got = layer_mean(&maps, size, layers);
            assert_eq!(got.len(), want.len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{} maps at {size:?}", maps.len());
        }
    }

    #[test]
    fn a_map_at_the_output_size_is_taken_as_it_is() {
        // No interpolation: a NaN stays in its cell (a blend with a zero weight would spread it).
        let map = CamMap {
            height: 1,
            width: 3,
            values: vec![0.0, f32::NAN, 2.0],
        };
        let got = layer_mean(&[&map], [1, 3], 1.0);
        assert_eq!(got[0], 0.0);
        assert!(got[1].is_nan());
        assert_eq!(got[2], 2.0 / 2.0 / (1e-7 + 1.0));
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
