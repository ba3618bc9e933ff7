//! Bilinear resampling with half-pixel centres (`align_corners = false`), as in
//! `torch.nn.functional.interpolate(mode="bilinear")` and `cv2.resize(INTER_LINEAR)` when enlarging.

use crate::cam::CamMap;

/// Source coordinate and blend weight for output index `i` when mapping `from` cells to `to`.
fn source(i: usize, from: usize, to: usize) -> (usize, usize, f32) {
    let scale = from as f32 / to as f32;
    let x = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
    let x0 = (x.floor() as usize).min(from - 1);
    let x1 = (x0 + 1).min(from - 1);
    (x0, x1, x - x0 as f32)
}

/// Resizes `map` to `height` x `width`.
pub fn upsample_bilinear(map: &CamMap, height: usize, width: usize) -> CamMap {
    let mut values = vec![0.0; height * width];
    upsample_bilinear_add(map, height, width, &mut values);
    CamMap {
        height,
        width,
        values,
    }
}

/// [`upsample_bilinear`]'s values added into `out` (`height` x `width` of them), without a
/// buffer of their own.
pub fn upsample_bilinear_add(map: &CamMap, height: usize, width: usize, out: &mut [f32]) {
    if map.height == 0 || map.width == 0 || width == 0 {
        return;
    }
    let resized = Upsampling::new(map, height, width);
    for (y, out) in out.chunks_exact_mut(width).take(height).enumerate() {
        resized.write_row(y, out, true);
    }
}

/// A map resized to `height` x `width` a row at a time: each source row resized along x once,
/// then each output row blended from two of them (the same products and sums, in the same
/// order, as interpolating each value alone). For sums of several maps at one size, written
/// once instead of added into a buffer map by map.
pub struct Upsampling {
    rows: Vec<f32>,
    from: usize,
    height: usize,
    width: usize,
    /// The map is already `height` x `width`: its rows are taken as they are (a blend with
    /// a zero weight would spread a NaN to its neighbours).
    same: bool,
}

impl Upsampling {
    /// `map` (not empty) resized along x.
    pub fn new(map: &CamMap, height: usize, width: usize) -> Self {
        if (map.height, map.width) == (height, width) {
            return Upsampling {
                rows: map.values.clone(),
                from: height,
                height,
                width,
                same: true,
            };
        }
        let w = map.width;
        let cols: Vec<_> = (0..width).map(|x| source(x, w, width)).collect();
        let mut rows = vec![0.0f32; map.height * width];
        crate::kernels::map_scale::resize(&map.values, w, &cols, &mut rows);
        Upsampling {
            rows,
            from: map.height,
            height,
            width,
            same: false,
        }
    }

    /// Output row `y` written into `out` (`width` values), or added to what is there.
    pub fn write_row(&self, y: usize, out: &mut [f32], add: bool) {
        if self.same {
            let row = &self.rows[y * self.width..][..self.width];
            let pairs = out.iter_mut().zip(row);
            match add {
                true => pairs.for_each(|(o, v)| *o += v),
                false => pairs.for_each(|(o, v)| *o = 0.0 + v),
            }
            return;
        }
        let (y0, y1, fy) = source(y, self.from, self.height);
        let width = self.width;
        let (top, bottom) = (
            &self.rows[y0 * width..][..width],
            &self.rows[y1 * width..][..width],
        );
        crate::kernels::map_scale::blend(out, top, bottom, fy, add);
    }
}

/// Min-max normalisation to `[0, 1]` (all zeros when the map is constant), for display only.
pub fn normalise_min_max(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    if !range.is_finite() || range <= 0.0 {
        return vec![0.0; values.len()];
    }
    values.iter().map(|&v| (v - lo) / range).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[[0, 1], [2, 3]]`.
    fn two_by_two() -> CamMap {
        CamMap {
            height: 2,
            width: 2,
            values: vec![0.0, 1.0, 2.0, 3.0],
        }
    }

    #[test]
    fn doubles_a_2x2_map_like_torch_bilinear() {
        // torch.nn.functional.interpolate([[0, 1], [2, 3]], size=(4, 4), mode="bilinear", align_corners=False)
        let map = two_by_two();
        let up = upsample_bilinear(&map, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(up.values, want);
    }

    #[test]
    fn the_adding_form_adds_to_what_is_there() {
        let map = two_by_two();
        let mut out = vec![10.0; 16];
        upsample_bilinear_add(&map, 4, 4, &mut out);
        let want: Vec<f32> = upsample_bilinear(&map, 4, 4)
            .values
            .iter()
            .map(|v| v + 10.0)
            .collect();
        assert_eq!(out, want);
        // The same size adds the values as they are.
        let mut same = vec![1.0; 4];
        upsample_bilinear_add(&map, 2, 2, &mut same);
        assert_eq!(same, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn min_max_handles_constant_maps() {
        assert_eq!(normalise_min_max(&[2.0, 4.0, 3.0]), [0.0, 1.0, 0.5]);
        assert_eq!(normalise_min_max(&[5.0, 5.0]), [0.0, 0.0]);
    }
}
