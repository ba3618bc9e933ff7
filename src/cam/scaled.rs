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
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().fold(0.0, |m: f32, v| m.max(v - min));
    values
        .iter_mut()
        .for_each(|v| *v = (*v - min) / (1e-7 + max));
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
