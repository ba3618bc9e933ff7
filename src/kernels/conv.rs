//! 2-D convolution on the host for Burn's CPU backend, where the backbone pass (no gradients
//! needed) spends nearly all of its time. Burn flex's convolution converts every input to NHWC,
//! re-lays the weights out on each call and runs one small matrix product per tile of 512
//! outputs; this kernel does neither:
//! - im2col in NCHW, with rows in the ONNX weight order `(ci, ky, kx)`, so the weights are used
//!   as stored and every row is a shifted copy of an input row;
//! - one `gemm` call per image and group (a 1×1 stride-1 convolution multiplies the input
//!   directly), images spread over the thread pool, the scratch buffer kept per thread;
//! - depthwise convolutions (one input channel per group) as shifted multiply-adds on padded
//!   phase planes, the same kernel as max pooling ([`window`](super::window));
//! - the bias, a residual addition and the activation that follow the convolution in the graph
//!   applied in the same pass over each image's output (see [`Epilogue`]).

use std::mem::MaybeUninit;

use super::epilogue::Epilogue;
use super::matmul::{GroupProduct, matmul_into, with_columns};
use super::par::threads;
use super::shape::{ConvShape, check_len};
use super::uninit::{Written, written_in_parts};
use super::window::{Window, gather, window};
use super::work;

/// Convolves `batch` NCHW images `x` with weights `w` (`[cout, cin / groups, kh, kw]`,
/// row-major), then applies `epilogue`; returns NCHW outputs (written once: never zeroed).
pub fn conv2d(x: &[f32], batch: usize, s: &ConvShape, w: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    s.checked_output();
    check_len("the input", x.len(), s.input_len(batch));
    check_len("the weights", w.len(), s.weight_len());
    epilogue.check(s, batch);
    work::count_convolution(s, batch);
    let out_image = s.output_len(1);
    let in_image = s.input_len(1);
    // Few images: let the matrix product use the threads instead.
    let inner_parallel = batch < threads();
    written_in_parts(batch, out_image, |b, out_b| {
        let x_b = &x[b * in_image..(b + 1) * in_image];
        let image = epilogue.of_image(b, out_image);
        if s.is_depthwise() {
            window(x_b, s, Window::Sum(w), &image, out_b)
        } else {
            grouped(x_b, s, w, &image, out_b, inner_parallel)
        }
    })
}

/// One image, any groups: im2col (unless pointwise), one matrix product per group, each
/// group's output channels finished by `epilogue` (this image's) while they are warm.
fn grouped(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
    inner_parallel: bool,
) -> Written {
    let GroupProduct {
        n,
        cin_g,
        cout_g,
        k,
        plane,
        parallelism,
    } = GroupProduct::of(s, inner_parallel);
    let columns_len = if s.is_pointwise() { 0 } else { k * n };
    with_columns(columns_len, |columns| {
        let mut written = Written::nothing_of(out);
        for (g, dst) in out.chunks_exact_mut(cout_g * n).enumerate() {
            let x_g = &x[g * cin_g * plane..(g + 1) * cin_g * plane];
            let rhs: &[f32] = if s.is_pointwise() {
                x_g
            } else {
                im2col(x_g, cin_g, s, columns);
                columns
            };
            let w_g = &w[g * cout_g * k..(g + 1) * cout_g * k];
            let dst = matmul_into(dst, [cout_g, n, k], w_g, false, rhs, parallelism);
            epilogue.channels(g * cout_g, cout_g, n).apply(dst, n);
            written = written.and(Written::of(dst));
        }
        written
    })
}

/// The valid output columns `[lo, hi)` for kernel column offset `off` (input column
/// `ox * stride + off - pad`), and the input column of `lo`.
fn valid_range(out: usize, input: usize, stride: usize, off: usize, pad: usize) -> (usize, usize) {
    // ix = ox * stride + off - pad must lie in [0, input).
    let lo = pad.saturating_sub(off).div_ceil(stride);
    let hi = if input + pad > off {
        ((input + pad - off - 1) / stride + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Fills `columns` (`[cin_g * kh * kw, oh * ow]`, rows in `(ci, ky, kx)` order) from one
/// group's input planes.
fn im2col(x: &[f32], cin_g: usize, s: &ConvShape, columns: &mut [f32]) {
    let [h, w] = s.input;
    let [oh, ow] = s.checked_output();
    let n = oh * ow;
    let [kh, kw] = s.kernel;
    let mut rows = columns.chunks_mut(n);
    for ci in 0..cin_g {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = rows.next().expect("k rows");
                let (lo, hi) = valid_range(ow, w, s.stride[1], kx * s.dilation[1], s.pad[1].0);
                for oy in 0..oh {
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.pad[0].0 as isize;
                    if iy < 0 || iy >= h as isize || lo >= hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    let ix0 = lo * s.stride[1] + kx * s.dilation[1] - s.pad[1].0;
                    gather(&mut dst[lo..hi], &src[ix0..], s.stride[1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::testing::{reference, values};

    #[test]
    fn every_kernel_path_matches_the_definition() {
        let cases = [
            // pointwise, plain 3x3 with padding, strided 7x7 stem, asymmetric pads + dilation,
            // grouped, depthwise stride 1 and 2 (5x5), a kernel larger than the input.
            (3, [9, 9], 5, 1, [1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
            (4, [8, 7], 6, 1, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            (3, [17, 15], 4, 1, [7, 7], [2, 2], [1, 1], [(3, 3), (3, 3)]),
            (4, [11, 10], 6, 2, [3, 3], [2, 1], [2, 2], [(0, 2), (1, 0)]),
            (6, [7, 7], 6, 6, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            (5, [12, 9], 5, 5, [5, 5], [2, 2], [1, 1], [(2, 2), (2, 2)]),
            (2, [3, 3], 3, 1, [5, 5], [1, 1], [1, 1], [(2, 2), (2, 2)]),
            // Depthwise with a kernel nearly as wide as the input (the window runs row by row).
            (3, [6, 16], 3, 3, [3, 12], [1, 1], [1, 1], [(1, 1), (0, 0)]),
        ];
        for (i, (cin, input, cout, groups, kernel, stride, dilation, pad)) in
            cases.into_iter().enumerate()
        {
            let s = ConvShape {
                cin,
                input,
                cout,
                groups,
                kernel,
                stride,
                dilation,
                pad,
            };
            let batch = 3;
            let x = values(batch * cin * input[0] * input[1], i as u32);
            let w = values(cout * cin / groups * kernel[0] * kernel[1], 100 + i as u32);
            let bias = values(cout, 200 + i as u32);
            let want = reference(&x, batch, &s, &w, Some(&bias));
            let residual = values(want.len(), 300 + i as u32);
            let epilogues = [
                (None, None),
                (None, Some(Activation::Relu)),
                (Some(&residual[..]), Some(Activation::Clip(-0.5, 0.75))),
                (Some(&residual[..]), Some(Activation::LeakyRelu(0.1))),
                (Some(&residual[..]), None),
            ];
            for (residual, activation) in epilogues {
                let epilogue = Epilogue {
                    bias: Some(&bias),
                    residual,
                    activation,
                };
                let got = conv2d(&x, batch, &s, &w, &epilogue);
                assert_eq!(got.len(), want.len(), "case {i}");
                for (j, (g, r)) in got.iter().zip(&want).enumerate() {
                    let r = r + residual.map_or(0.0, |res| res[j]);
                    let r = activation.map_or(r, |a| a.apply(r));
                    assert!(
                        (g - r).abs() <= 1e-5 * (1.0 + r.abs()),
                        "case {i} {activation:?} value {j}: {g} vs {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn valid_ranges_cover_exactly_the_in_bounds_columns() {
        for (out, input, stride, off, pad) in [
            (5, 5, 1, 0, 1),
            (5, 5, 1, 2, 1),
            (3, 7, 2, 4, 3),
            (2, 2, 1, 4, 2),
        ] {
            let (lo, hi) = valid_range(out, input, stride, off, pad);
            for ox in 0..out {
                let ix = (ox * stride + off) as isize - pad as isize;
                let inside = ix >= 0 && ix < input as isize;
                assert_eq!(
                    (lo..hi).contains(&ox),
                    inside,
                    "{out} {input} {stride} {off} {pad} ox {ox}"
                );
            }
        }
    }
}
