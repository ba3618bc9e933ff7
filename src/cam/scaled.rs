//! Maps scaled as pytorch-grad-cam returns them (`scale_cam_image`), for the results it
//! averages: aug-smoothing's six inputs and several layers' maps.

use super::CamMap;
use crate::render::upsample_bilinear;

/// pytorch-grad-cam's `scale_cam_image(map, target_size)`: min-max scaled at its own
/// resolution, then resized bilinearly to `height` x `width`.
pub fn scaled_to(map: &CamMap, [height, width]: [usize; 2]) -> CamMap {
    let scaled = CamMap {
        values: scale(&map.values),
        ..map.clone()
    };
    upsample_bilinear(&scaled, height, width)
}

/// pytorch-grad-cam's `scale_cam_image` without the resize: `(v - min) / (1e-7 + max(v - min))`.
pub fn scale(values: &[f32]) -> Vec<f32> {
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted: Vec<f32> = values.iter().map(|v| v - min).collect();
    let max = shifted.iter().copied().fold(0.0, f32::max);
    shifted.iter().map(|v| v / (1e-7 + max)).collect()
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
