//! A convolution's input gradient from an output gradient that is zero outside a small window
//! (one detection's score reaches the head's feature maps only through its receptive field):
//! the window's outputs and the input region their taps read make a convolution of their own,
//! whose input gradient is computed alone and placed into zeros. Exact: every tap of a nonzero
//! output lies in the region, and the region's edges are the image's own padding.

use std::ops::Range;

use super::shape::ConvShape;

/// The window must cover at most this share of the output plane (1 / `SPARSE`) for the cut to
/// pay for its copies.
const SPARSE: usize = 4;

/// The rows and columns of one image's output planes (`[channels, oh, ow]` in `g`) holding all
/// its nonzero values; `None` when every value is zero.
fn nonzero_window(g: &[f32], [oh, ow]: [usize; 2]) -> Option<[Range<usize>; 2]> {
    let mut window: Option<[Range<usize>; 2]> = None;
    for plane in g.chunks_exact(oh * ow) {
        for (y, row) in plane.chunks_exact(ow).enumerate() {
            let Some(first) = row.iter().position(|&v| v != 0.0) else {
                continue;
            };
            let last = row.iter().rposition(|&v| v != 0.0).unwrap_or(first);
            window = Some(match window {
                None => [y..y + 1, first..last + 1],
                Some([rows, cols]) => [
                    rows.start.min(y)..rows.end.max(y + 1),
                    cols.start.min(first)..cols.end.max(last + 1),
                ],
            });
        }
    }
    window
}

/// Where a window of outputs along one axis reads its input: the input range its taps touch
/// (clipped to the `size` input values), and the padding before and after it that keeps the
/// outputs' taps where they were.
fn reach(
    out: &Range<usize>,
    size: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_before: usize,
) -> (Range<usize>, (usize, usize)) {
    let span = (kernel - 1) * dilation + 1;
    let first_tap = out.start * stride;
    let start = first_tap.saturating_sub(pad_before);
    let end = ((out.end - 1) * stride + span)
        .saturating_sub(pad_before)
        .min(size);
    if end <= start {
        // Every tap falls in the padding (before the input or after it).
        return (start..start, (0, 0));
    }
    let before = (pad_before + start) - first_tap;
    let after = (out.len() - 1) * stride + span - (end - start) - before;
    (start..end, (before, after))
}

/// Where the outputs `rows` × `cols` of `s` read their input: the input rows and columns,
/// and the convolution of that region alone whose outputs are exactly those (its padding the
/// image's own at the edges); `None` when all their taps fall in the padding.
pub fn window_conv(
    [rows, cols]: [&Range<usize>; 2],
    s: &ConvShape,
) -> Option<([Range<usize>; 2], ConvShape)> {
    let [h, w] = s.input;
    let (in_rows, pad_rows) = reach(rows, h, s.kernel[0], s.stride[0], s.dilation[0], s.pad[0].0);
    let (in_cols, pad_cols) = reach(cols, w, s.kernel[1], s.stride[1], s.dilation[1], s.pad[1].0);
    if in_rows.is_empty() || in_cols.is_empty() {
        return None;
    }
    let cut = ConvShape {
        input: [in_rows.len(), in_cols.len()],
        pad: [pad_rows, pad_cols],
        ..*s
    };
    debug_assert_eq!(cut.output(), Some([rows.len(), cols.len()]));
    Some(([in_rows, in_cols], cut))
}

/// One image's input gradient of `s` from its output gradient `g` (and the activation's
/// output `gate_output`, cut the same way), when `g` is zero outside a window of at most
/// 1 / [`SPARSE`] of the plane: `dense` (the input gradient of any shape, of the cut
/// gradient and gate) run on the window's convolution, placed into zeros. `None` when `g`
/// is not that sparse (the caller runs `dense` on the whole).
pub fn input_grad_in_window(
    g: &[f32],
    gate_output: Option<&[f32]>,
    s: &ConvShape,
    dense: impl FnOnce(&[f32], Option<&[f32]>, &ConvShape) -> Vec<f32>,
) -> Option<Vec<f32>> {
    let [oh, ow] = s.output()?;
    let [h, w] = s.input;
    if oh * ow == 0 || g.len() != s.cout * oh * ow {
        return None;
    }
    let Some([rows, cols]) = nonzero_window(g, [oh, ow]) else {
        return Some(vec![0.0; s.cin * h * w]);
    };
    if rows.len() * cols.len() * SPARSE > oh * ow {
        return None;
    }
    let Some(([in_rows, in_cols], cut)) = window_conv([&rows, &cols], s) else {
        // The window's taps all fall in the padding.
        return Some(vec![0.0; s.cin * h * w]);
    };
    let crop = |planes: &[f32]| -> Vec<f32> {
        planes
            .chunks_exact(oh * ow)
            .flat_map(|plane| {
                plane[rows.start * ow..rows.end * ow]
                    .chunks_exact(ow)
                    .flat_map(|row| &row[cols.clone()])
            })
            .copied()
            .collect()
    };
    let gate = gate_output.map(crop);
    let small = dense(&crop(g), gate.as_deref(), &cut);
    let mut dx = vec![0.0; s.cin * h * w];
    let (rh, rw) = (in_rows.len(), in_cols.len());
    for (plane, part) in dx.chunks_exact_mut(h * w).zip(small.chunks_exact(rh * rw)) {
        for (y, row) in part.chunks_exact(rw).enumerate() {
            let at = (in_rows.start + y) * w + in_cols.start;
            plane[at..at + rw].copy_from_slice(row);
        }
    }
    Some(dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv_grad::conv2d_input_grad;
    use crate::kernels::testing::{conv_shape, values};

    /// `g` of `s` zero outside `rows` × `cols`.
    fn windowed(s: &ConvShape, rows: Range<usize>, cols: Range<usize>, seed: u32) -> Vec<f32> {
        let [oh, ow] = s.checked_output();
        let mut g = values(s.output_len(1), seed);
        for (i, v) in g.iter_mut().enumerate() {
            let (y, x) = (i / ow % oh, i % ow);
            if !rows.contains(&y) || !cols.contains(&x) {
                *v = 0.0;
            }
        }
        g
    }

    #[test]
    fn the_window_gives_the_whole_input_gradient() {
        // Strides, dilation, asymmetric padding, windows at every edge and inside, depthwise.
        let cases = [
            (
                (4, [20, 20], 5, 1, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
                0..3,
                17..20,
            ),
            (
                (4, [21, 19], 6, 1, [3, 3], [2, 2], [1, 1], [(1, 0), (0, 1)]),
                4..7,
                0..2,
            ),
            (
                (3, [24, 24], 3, 3, [5, 5], [1, 1], [1, 1], [(2, 2), (2, 2)]),
                9..12,
                10..13,
            ),
            (
                (2, [30, 30], 4, 1, [3, 3], [1, 1], [2, 2], [(2, 2), (2, 2)]),
                27..30,
                28..30,
            ),
            (
                (5, [16, 16], 3, 1, [1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
                5..6,
                7..8,
            ),
        ];
        for (i, (shape, rows, cols)) in cases.into_iter().enumerate() {
            let s = conv_shape(shape);
            let w = values(s.weight_len(), 40 + i as u32);
            let g = windowed(&s, rows, cols, 50 + i as u32);
            let gate_output = values(s.output_len(1), 60 + i as u32);
            let want = conv2d_input_grad(&g, 1, &s, &w, None);
            let got = input_grad_in_window(&g, Some(&gate_output), &s, |g, gate, cut| {
                assert_eq!(
                    gate.map(<[f32]>::len),
                    Some(g.len()),
                    "case {i}: the gate is cut too"
                );
                conv2d_input_grad(g, 1, cut, &w, None)
            })
            .unwrap_or_else(|| panic!("case {i}: not sparse enough"));
            assert_eq!(got.len(), want.len());
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "case {i} value {j}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn a_window_in_the_padding_reads_nothing() {
        // A 1x1 convolution padded by 3: outputs 0..2 and 9..11 of 11 read only padding.
        let s = conv_shape((2, [5, 5], 2, 1, [1, 1], [1, 1], [1, 1], [(3, 3), (3, 3)]));
        assert_eq!(s.output(), Some([11, 11]));
        for window in [0..2, 9..11] {
            assert!(window_conv([&window, &(4..6)], &s).is_none(), "{window:?}");
            assert!(window_conv([&(4..6), &window], &s).is_none(), "{window:?}");
        }
        let ([rows, cols], cut) = window_conv([&(2..4), &(4..6)], &s).unwrap();
        assert_eq!((rows, cols), (0..1, 1..3));
        assert_eq!(cut.output(), Some([2, 2]));
    }

    #[test]
    fn a_dense_or_zero_gradient_is_not_cut() {
        let s = conv_shape((2, [8, 8], 2, 1, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]));
        let never = |_: &[f32], _: Option<&[f32]>, _: &ConvShape| -> Vec<f32> { unreachable!() };
        let dense = values(s.output_len(1), 1);
        assert!(input_grad_in_window(&dense, None, &s, never).is_none());
        let zero = vec![0.0; s.output_len(1)];
        assert_eq!(
            input_grad_in_window(&zero, None, &s, never),
            Some(vec![0.0; s.input_len(1)])
        );
    }
}
