//! 2-D convolution on the host for Burn's CPU backend, where the backbone pass (no gradients
//! needed) spends nearly all of its time. Burn flex's convolution converts every input to NHWC,
//! re-lays the weights out on each call and runs one small matrix product per tile of 512
//! outputs; this kernel does neither:
//! - im2col in NCHW, with rows in the ONNX weight order `(ci, ky, kx)`, so the weights are used
//!   as stored and every row is a shifted copy of an input row;
//! - one `gemm` call per image, group and block of output rows (a 1×1 stride-1 convolution
//!   multiplies the input directly; a product larger than a core's L2 cache is split so that
//!   its columns and output stay there: [`BLOCK_VALUES`]), images spread over the thread pool,
//!   the scratch buffer kept per thread; fewer images than threads (a single image) spread
//!   each product, its im2col and its epilogue over the threads instead;
//! - depthwise convolutions (one input channel per group) as shifted multiply-adds on padded
//!   phase planes, the same kernel as max pooling ([`window`](super::window)), or on small
//!   planes 16 channels at a time ([`channel_blocks`](super::channel_blocks); which one:
//!   [`sliding_window`]);
//! - the bias, a residual addition and the activation that follow the convolution in the graph
//!   applied in the same pass over each image's output (see [`Epilogue`]).

use std::mem::MaybeUninit;
use std::ops::Range;

use super::epilogue::Epilogue;
use super::matmul::{GroupProduct, MatRef, matmul_columns_into, with_columns};
use super::par::{par_chunks, threads};
use super::pool::sliding_window;
use super::shape::{ConvShape, check_len};
use super::uninit::{Written, written_in_parts};
use super::window::{Window, gather};
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
            sliding_window(x_b, s, Window::Sum(w), &image, out_b)
        } else {
            grouped(x_b, s, w, &image, out_b, inner_parallel)
        }
    })
}

/// Values of a product's block (its output, or its im2col columns, whichever is larger)
/// that stay in the core's cache (512 KiB): a product larger than [`SPLIT_ABOVE`] is split by
/// output rows into blocks about this size, each finished by the epilogue while it is warm,
/// its columns built just before.
pub const BLOCK_VALUES: usize = 1 << 17;

/// The largest product (in [`BLOCK_VALUES`]' measure) done in one piece: 2 MiB, a core's L2
/// cache. Splitting smaller ones cost more in `gemm`'s packing than it saved.
pub const SPLIT_ABOVE: usize = 1 << 19;

/// Output rows per block of a product of `values` (see [`BLOCK_VALUES`]) over `rows` rows:
/// all of them up to [`SPLIT_ABOVE`], else as many blocks as it takes, of equal height.
fn rows_per_block(values: usize, rows: usize) -> usize {
    if values <= SPLIT_ABOVE {
        return rows.max(1);
    }
    let blocks = values.div_ceil(BLOCK_VALUES).min(rows.max(1));
    rows.div_ceil(blocks)
}

/// Output rows per block of one image's products of `s` (see [`rows_per_block`]): all of
/// them where the threads share one pointwise product, whose blocks would leave each too
/// little work.
fn block_rows(s: &ConvShape, inner_parallel: bool) -> usize {
    let [oh, ow] = s.checked_output();
    if inner_parallel && s.is_pointwise() {
        return oh.max(1);
    }
    let GroupProduct { cout_g, k, .. } = GroupProduct::of(s, inner_parallel);
    let columns = if s.is_pointwise() { 0 } else { k };
    rows_per_block(oh * ow * cout_g.max(columns), oh)
}

/// One image, any groups: one matrix product per group and block of output rows (see
/// [`BLOCK_VALUES`]), on the input itself where the convolution is pointwise, else on the
/// block's im2col columns; each block finished by `epilogue` (this image's) while it is warm.
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
    let [oh, ow] = s.checked_output();
    let rows_per_block = block_rows(s, inner_parallel);
    let columns_len = if s.is_pointwise() {
        0
    } else {
        k * rows_per_block * ow
    };
    with_columns(columns_len, |columns| {
        let mut written = Written::nothing_of(out);
        for (g, dst) in out.chunks_exact_mut(cout_g * n).enumerate() {
            let x_g = &x[g * cin_g * plane..(g + 1) * cin_g * plane];
            let w_g = MatRef::row_major(&w[g * cout_g * k..(g + 1) * cout_g * k], [cout_g, k]);
            let epilogue = epilogue.channels(g * cout_g, cout_g, n);
            for first in (0..oh).step_by(rows_per_block) {
                let rows = first..(first + rows_per_block).min(oh);
                let cols = rows.start * ow..rows.end * ow;
                let rhs = if s.is_pointwise() {
                    MatRef {
                        data: &x_g[cols.start..],
                        shape: [k, cols.len()],
                        strides: [plane, 1],
                    }
                } else {
                    let columns = &mut columns[..k * cols.len()];
                    im2col(x_g, cin_g, s, rows, columns, inner_parallel);
                    MatRef::row_major(columns, [k, cols.len()])
                };
                let mut block = matmul_columns_into(dst, n, cols.clone(), w_g, rhs, parallelism);
                if inner_parallel {
                    // The threads share the epilogue by channels (as `gemm` shares a product large
                    // enough for its threading).
                    let per = block.len().div_ceil(threads()).max(1);
                    par_chunks(&mut block, per, |i, rows| {
                        epilogue.channels(i * per, rows.len(), n).apply_columns(
                            rows,
                            cols.clone(),
                            n,
                        );
                    });
                } else {
                    epilogue.apply_columns(&mut block, cols, n);
                }
            }
            // SAFETY: the blocks' columns tile `0..n` (whole output rows `0..oh`), and each
            // product wrote all `cout_g` rows of its block.
            written = written.and(unsafe { Written::assume_all(dst) });
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

/// Fills `columns` (`[cin_g * kh * kw, rows.len() * ow]`, rows in `(ci, ky, kx)` order) with
/// output rows `rows` of one group's input planes; its rows spread over the threads with
/// `parallel`.
fn im2col(
    x: &[f32],
    cin_g: usize,
    s: &ConvShape,
    rows: Range<usize>,
    columns: &mut [f32],
    parallel: bool,
) {
    let [h, w] = s.input;
    let [_, ow] = s.checked_output();
    let n = rows.len() * ow;
    let [kh, kw] = s.kernel;
    let fill = |r: usize, row: &mut [f32]| {
        let (ci, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        let (lo, hi) = valid_range(ow, w, s.stride[1], kx * s.dilation[1], s.pad[1].0);
        for (oy, dst) in rows.clone().zip(row.chunks_exact_mut(ow)) {
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
    };
    let columns = &mut columns[..cin_g * kh * kw * n];
    if parallel {
        par_chunks(columns, n, fill);
    } else {
        columns
            .chunks_mut(n)
            .enumerate()
            .for_each(|(r, row)| fill(r, row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::testing::{assert_epilogue_matches, conv_shape, reference, values};

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
            // Depthwise with a kernel nearly as wide as the input: 3 channels by the plane
            // kernel, 17 in 16-channel blocks (a whole one and one of a single channel).
            (3, [6, 16], 3, 3, [3, 12], [1, 1], [1, 1], [(1, 1), (0, 0)]),
            (
                17,
                [6, 16],
                17,
                17,
                [3, 12],
                [1, 1],
                [1, 1],
                [(1, 1), (0, 0)],
            ),
            // Depthwise on planes too large for the blocks (the plane kernel).
            (2, [60, 60], 2, 2, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            // Products larger than SPLIT_ABOVE, split into blocks of output rows: pointwise,
            // and strided 3x3 (im2col per block).
            (
                16,
                [96, 96],
                64,
                1,
                [1, 1],
                [1, 1],
                [1, 1],
                [(0, 0), (0, 0)],
            ),
            (
                8,
                [181, 192],
                8,
                1,
                [3, 3],
                [2, 2],
                [1, 1],
                [(1, 1), (1, 1)],
            ),
        ];
        // Both are split on one thread; the second one's last block is shorter.
        let [split_pointwise, split_strided] = [10, 11].map(|i| conv_shape(cases[i]));
        let oh = |s: &ConvShape| s.checked_output()[0];
        assert!(block_rows(&split_pointwise, false) < oh(&split_pointwise));
        let rows = block_rows(&split_strided, false);
        assert!(rows < oh(&split_strided) && oh(&split_strided) % rows != 0);
        // The split products through `grouped` itself, blocks on one thread (the path of a
        // batch that fills the threads, whatever this machine's count) and with the threads
        // on one product.
        for i in [10, 11] {
            let s = conv_shape(cases[i]);
            let x = values(s.input_len(1), 40 + i as u32);
            let w = values(s.weight_len(), 50 + i as u32);
            let bias = values(s.cout, 60 + i as u32);
            let want = reference(&x, 1, &s, &w, Some(&bias));
            let epilogue = Epilogue {
                bias: Some(&bias),
                ..Epilogue::default()
            };
            for inner_parallel in [false, true] {
                let got = written_in_parts(1, s.output_len(1), |_, out| {
                    grouped(&x, &s, &w, &epilogue, out, inner_parallel)
                });
                let what = format!("case {i} grouped, inner parallel {inner_parallel}");
                assert_epilogue_matches(&what, &got, &want, None, None);
            }
        }
        assert!(crate::kernels::channel_blocks::applies(
            &conv_shape(cases[8]),
            crate::kernels::isa::Isa::active()
        ));
        // Three images spread over the threads; one image spreads its products over them.
        for (i, batch) in (0..cases.len()).flat_map(|i| [(i, 3), (i, 1)]) {
            check_case(i, conv_shape(cases[i]), batch);
        }
    }

    /// `conv2d` of `batch` images of `s` equals the definition, with every epilogue.
    fn check_case(i: usize, s: ConvShape, batch: usize) {
        let ConvShape {
            cin,
            input,
            cout,
            groups,
            kernel,
            ..
        } = s;
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
            let what = format!("case {i} batch {batch}");
            assert_epilogue_matches(&what, &got, &want, residual, activation);
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
