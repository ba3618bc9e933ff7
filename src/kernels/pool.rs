//! Which kernel runs a sliding window (a depthwise convolution or max pooling) on one image:
//! [`channel_blocks`] where its 16-channel blocks pay ([`channel_blocks::applies`]), else the
//! plane kernel ([`window`]); and max pooling of a batch.

use std::mem::MaybeUninit;

use super::channel_blocks;
use super::epilogue::Epilogue;
use super::isa::Isa;
use super::shape::{ConvShape, check_len};
use super::uninit::{Written, written_in_parts};
use super::window::{Window, window};

/// One image of a depthwise convolution or max pooling (`op`), then `epilogue`, by the kernel
/// that suits `s` on this CPU. Writes every value of `out` and returns the receipt.
pub fn sliding_window(
    x: &[f32],
    s: &ConvShape,
    op: Window,
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) -> Written {
    if channel_blocks::applies(s, Isa::active()) {
        channel_blocks::run(x, s, op, epilogue, out)
    } else {
        window(x, s, op, epilogue, out)
    }
}

/// Max pooling of `batch` NCHW images (`s.groups`, `s.cout` = channels, no weights).
pub fn max_pool2d(x: &[f32], batch: usize, s: &ConvShape) -> Vec<f32> {
    check_len("the input", x.len(), s.input_len(batch));
    let out_image = s.output_len(1);
    let in_image = s.input_len(1);
    written_in_parts(batch, out_image, |b, o| {
        let x_b = &x[b * in_image..(b + 1) * in_image];
        sliding_window(x_b, s, Window::Max, &Epilogue::default(), o)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::values;

    /// Each image through the plane kernel.
    fn by_planes(x: &[f32], batch: usize, s: &ConvShape) -> Vec<f32> {
        let n = s.input_len(1);
        written_in_parts(batch, s.output_len(1), |b, o| {
            window(
                &x[b * n..(b + 1) * n],
                s,
                Window::Max,
                &Epilogue::default(),
                o,
            )
        })
    }

    /// Each image through the 16-channel blocks.
    fn by_blocks(x: &[f32], batch: usize, s: &ConvShape) -> Vec<f32> {
        let n = s.input_len(1);
        written_in_parts(batch, s.output_len(1), |b, o| {
            channel_blocks::run(
                &x[b * n..(b + 1) * n],
                s,
                Window::Max,
                &Epilogue::default(),
                o,
            )
        })
    }

    #[test]
    fn max_pooling_matches_the_definition() {
        for (i, (input, kernel, stride, dilation, pad)) in [
            ([9, 9], [3, 3], [2, 2], [1, 1], [(1, 1), (1, 1)]),
            ([8, 7], [2, 2], [2, 2], [1, 1], [(0, 0), (0, 0)]),
            ([10, 11], [3, 2], [1, 3], [2, 1], [(2, 0), (1, 1)]),
            // A kernel nearly as wide as the input: few outputs per phase row, run row by row.
            ([10, 20], [3, 15], [1, 1], [1, 1], [(1, 1), (0, 0)]),
        ]
        .into_iter()
        .enumerate()
        {
            // A whole block and a partial one.
            let c = 3 + 14 * (i % 2);
            let s = ConvShape::pooling(c, input, kernel, stride, dilation, pad);
            let batch = 2;
            let x = values(batch * c * input[0] * input[1], 400 + i as u32);
            for (path, got) in [
                ("dispatched", max_pool2d(&x, batch, &s)),
                ("plane kernel", by_planes(&x, batch, &s)),
                ("channel blocks", by_blocks(&x, batch, &s)),
            ] {
                let [oh, ow] = s.output().unwrap();
                let mut j = 0;
                for plane in x.chunks(input[0] * input[1]) {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut m = f32::NEG_INFINITY;
                            for ky in 0..kernel[0] {
                                for kx in 0..kernel[1] {
                                    let iy = (oy * stride[0] + ky * dilation[0]) as isize
                                        - pad[0].0 as isize;
                                    let ix = (ox * stride[1] + kx * dilation[1]) as isize
                                        - pad[1].0 as isize;
                                    if iy >= 0
                                        && ix >= 0
                                        && iy < input[0] as isize
                                        && ix < input[1] as isize
                                    {
                                        m = m.max(plane[iy as usize * input[1] + ix as usize]);
                                    }
                                }
                            }
                            assert_eq!(got[j], m, "case {i} {path} value {j}");
                            j += 1;
                        }
                    }
                }
                assert_eq!(j, got.len());
            }
        }
    }
}
