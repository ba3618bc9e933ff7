//! CAM maps at the input's size, vectorised for the widest instruction set the CPU has
//! ([`isa`](super::isa)): an output row blended from two resized source rows (bilinear
//! resizing), the smallest and largest value of a map, and pytorch-grad-cam's min-max scaling
//! of a mean of maps. A detector's dozens of detections are each a few maps at 640 x 640,
//! where the portable build's 4-lane divisions alone took a tenth of the request.
//!
//! No operation is fused into a multiply-add, so every ISA gives the portable build's values
//! bit for bit.

use super::isa::{Kernel, isa_dispatch};
use super::lanes::fold;

/// `top · (1 - f) + bottom · f` for each pair, written into `out` (`0 +` that, as adding
/// into zeros does: a -0 becomes 0) or added to what is there.
#[inline(always)]
fn blend_rows(out: &mut [f32], top: &[f32], bottom: &[f32], f: f32, add: bool) {
    let pairs = out.iter_mut().zip(top).zip(bottom);
    if add {
        pairs.for_each(|((o, &t), &b)| *o += t * (1.0 - f) + b * f);
    } else {
        pairs.for_each(|((o, &t), &b)| *o = 0.0 + (t * (1.0 - f) + b * f));
    }
}

isa_dispatch! {
    /// [`blend_rows`] compiled for `isa`.
    fn blend_on(out: &mut [f32], top: &[f32], bottom: &[f32], f: f32, add: bool) => blend_rows
}

/// Each row of `values` (`width` long) resized along x into `out`: output value `x`
/// of a row is `row[x0] · (1 - f) + row[x1] · f` for the `x`-th `(x0, x1, f)` of `cols`.
#[inline(always)]
fn resize_rows(values: &[f32], width: usize, cols: &[(usize, usize, f32)], out: &mut [f32]) {
    for (row, resized) in values
        .chunks_exact(width)
        .zip(out.chunks_exact_mut(cols.len()))
    {
        for (r, &(x0, x1, f)) in resized.iter_mut().zip(cols) {
            *r = row[x0] * (1.0 - f) + row[x1] * f;
        }
    }
}

isa_dispatch! {
    /// [`resize_rows`] compiled for `isa`.
    fn resize_rows_on(values: &[f32], width: usize, cols: &[(usize, usize, f32)], out: &mut [f32]) => resize_rows
}

/// The smallest and the largest value, NaNs skipped (infinity and minus infinity when there
/// is no other value); a pass for each (one pass keeping both did not vectorise).
#[inline(always)]
fn min_max_of(values: &[f32]) -> (f32, f32) {
    let low = fold(values, f32::INFINITY, |l, v| if v < l { v } else { l });
    let high = fold(values, f32::NEG_INFINITY, |h, v| if v > h { v } else { h });
    (low, high)
}

isa_dispatch! {
    /// [`min_max_of`] compiled for `isa`.
    fn min_max_on(values: &[f32]) -> (f32, f32) => min_max_of
}

/// `(v / divisor - min) / (1e-7 + max)` for every value, in place.
#[inline(always)]
fn divide_and_scale(values: &mut [f32], divisor: f32, min: f32, max: f32) {
    let range = 1e-7 + max;
    values
        .iter_mut()
        .for_each(|v| *v = (*v / divisor - min) / range);
}

isa_dispatch! {
    /// [`divide_and_scale`] compiled for `isa`.
    fn divide_and_scale_on(values: &mut [f32], divisor: f32, min: f32, max: f32) => divide_and_scale
}

/// `top · (1 - f) + bottom · f` for each pair of values, written into `out` or added to it.
pub fn blend(out: &mut [f32], top: &[f32], bottom: &[f32], f: f32, add: bool) {
    blend_on(Kernel::Maps.enter(), out, top, bottom, f, add);
}

/// The rows of `values` (each `width` long) resized along x, value `x` of a row blended from
/// the two that `cols[x]` names, `(x0, x1, f)`: `row[x0] · (1 - f) + row[x1] · f`.
pub fn resize(values: &[f32], width: usize, cols: &[(usize, usize, f32)], out: &mut [f32]) {
    resize_rows_on(Kernel::Maps.enter(), values, width, cols, out);
}

/// The smallest and the largest of `values`, NaNs skipped (infinity and minus infinity when
/// there is none): a row's, to be joined with [`join_extremes`].
pub fn extremes(values: &[f32]) -> (f32, f32) {
    min_max_on(Kernel::Maps.enter(), values)
}

/// Two [`extremes`] joined (those of both parts).
pub fn join_extremes((l, h): (f32, f32), (low, high): (f32, f32)) -> (f32, f32) {
    (
        if low < l { low } else { l },
        if high > h { high } else { h },
    )
}

/// pytorch-grad-cam's `scale_cam_image` of the sums `values` divided by `divisor` (a mean
/// of `divisor` maps, `divisor > 0`), in place: `(v - min) / (1e-7 + max(v - min))` over the
/// quotients `v`. Dividing by a positive number keeps the values' order (rounding is
/// monotonic), so the quotients' minimum and maximum are the sums' divided: bit for bit the
/// quotients' scaling for sums of non-negative maps (elsewhere a zero's sign may differ).
pub fn scale_mean(values: &mut [f32], divisor: f32) {
    scale_mean_within(values, divisor, extremes(values));
}

/// [`scale_mean`] where the sums' [`extremes`] are known (taken as they were written).
pub fn scale_mean_within(values: &mut [f32], divisor: f32, (low, high): (f32, f32)) {
    debug_assert!(divisor > 0.0, "a mean of a positive number of maps");
    let min = low / divisor;
    let max = (high / divisor - min).max(0.0);
    divide_and_scale_on(Kernel::Maps.enter(), values, divisor, min, max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::Isa;
    use crate::kernels::testing::values;

    #[test]
    fn every_isa_gives_the_portable_values_bit_for_bit() {
        let (top, bottom) = (values(1000, 1), values(1000, 2));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let run = |isa: Isa| {
            let mut out = values(1000, 3);
            blend_on(isa, &mut out, &top, &bottom, 0.3125, true);
            blend_on(isa, &mut out[..500], &bottom, &top, 0.8, false);
            let cols: Vec<_> = (0..24)
                .map(|x| (x / 3, (x / 3 + 1).min(7), (x % 3) as f32 / 3.0))
                .collect();
            let mut resized = vec![0.0; 24 * 10];
            resize_rows_on(isa, &top[..80], 8, &cols, &mut resized);
            out[..240]
                .iter_mut()
                .zip(&resized)
                .for_each(|(o, r)| *o -= r);
            let (low, high) = min_max_on(isa, &out[..999]);
            divide_and_scale_on(isa, &mut out, 3.0, low, high);
            out
        };
        let want = run(Isa::Portable);
        for isa in Isa::supported() {
            assert_eq!(bits(&run(isa)), bits(&want), "{isa:?}");
        }
    }

    #[test]
    fn the_mean_is_scaled_as_its_quotients_would_be() {
        let sums: Vec<f32> = (0..1003)
            .map(|i| ((i * 7919) % 113) as f32 * 0.37 - 9.0)
            .collect();
        let mut want: Vec<f32> = sums.iter().map(|v| v / 3.0).collect();
        let min = want.iter().copied().fold(f32::INFINITY, f32::min);
        let max = want.iter().fold(0.0, |m: f32, v| m.max(v - min));
        want.iter_mut().for_each(|v| *v = (*v - min) / (1e-7 + max));
        let mut got = sums;
        scale_mean(&mut got, 3.0);
        assert_eq!(got, want);
        // A NaN is skipped by the minimum and the maximum, and stays NaN.
        let mut got = vec![6.0, f32::NAN, -3.0, 9.0];
        scale_mean(&mut got, 3.0);
        assert_eq!(got[0], 3.0 / (1e-7 + 4.0));
        assert!(got[1].is_nan());
        assert_eq!((got[2], got[3]), (0.0, 4.0 / (1e-7 + 4.0)));
    }
}
