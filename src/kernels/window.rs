//! Sliding-window kernels over padded phase planes: depthwise convolution and max pooling,
//! one image at a time, every channel on its own.

use super::isa::{Kernel, isa_dispatch};
use super::matmul::with_scratch;
use super::par::par_chunks;
use super::shape::{ConvShape, check_len};

/// What a sliding window computes per output: a weighted sum (depthwise convolution, one
/// weight per tap and channel) or a maximum (max pooling).
#[derive(Clone, Copy)]
pub enum Window<'a> {
    /// `sum_taps w[c][tap] * x`, weights `[channels, kh, kw]`; padding reads zeros.
    Sum(&'a [f32]),
    /// `max_taps x`; padding reads minus infinity.
    Max,
}

/// One image of a depthwise convolution ([`Window::Sum`]) or max pooling ([`Window::Max`]),
/// every channel on its own. Each input plane is copied once, padded, into `stride × stride`
/// phase planes (phase `(ry, rx)` holds padded rows `ry, ry + sy, ...` and columns `rx, rx +
/// sx, ...`). In phase coordinates every tap is a plain shift, so on an output grid as wide as
/// a phase row each tap is one long branch-free pass over contiguous memory; the valid columns
/// are copied out at the end.
pub fn window(x: &[f32], s: &ConvShape, op: Window, out: &mut [f32]) {
    assert!(
        s.cin == s.cout && s.groups == s.cin,
        "a window runs every channel on its own: {s:?}"
    );
    check_len("the input", x.len(), s.input_len(1));
    check_len("the output", out.len(), s.output_len(1));
    if let Window::Sum(w) = op {
        check_len("the weights", w.len(), s.weight_len());
    }
    let isa = Kernel::Window.enter();
    with_scratch(|buf| window_on(isa, x, s, op, out, buf))
}

isa_dispatch! {
    /// [`window_with`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn window_on(x: &[f32], s: &ConvShape, op: Window, out: &mut [f32], buf: &mut Vec<f32>) => window_with
}

/// Output values per block of the window accumulation (8 KiB: well inside L1).
const WINDOW_BLOCK: usize = 2048;

/// The window kernel; `buf` is scratch space. Written without closures, so that all of it is
/// compiled with the features of the function it is inlined into.
#[inline(always)]
fn window_with(x: &[f32], s: &ConvShape, op: Window, out: &mut [f32], buf: &mut Vec<f32>) {
    let [h, iw] = s.input;
    let [oh, ow] = s.checked_output();
    let [kh, kw] = s.kernel;
    let [sy, sx] = s.stride;
    let [dy, dx] = s.dilation;
    let (ph, pw) = (h + s.pad[0].0 + s.pad[0].1, iw + s.pad[1].0 + s.pad[1].1);
    // Phase planes: `rows` x `cols` each, one spare row so every tap's run stays inside.
    let (rows, cols) = (ph.div_ceil(sy) + 1, pw.div_ceil(sx));
    let phase_len = rows * cols;
    // The output grid: `oh` rows of `cols` (the first `ow` of each are real outputs).
    let grid = oh * cols;
    let need = sy * sx * phase_len + grid;
    if buf.len() < need {
        buf.resize(need, 0.0);
    }
    let (phases, acc) = buf[..need].split_at_mut(sy * sx * phase_len);
    let (pad_value, start_value) = match op {
        Window::Sum(_) => (0.0, 0.0),
        Window::Max => (f32::NEG_INFINITY, f32::NEG_INFINITY),
    };
    // Every channel writes the same (inner) positions: the padding keeps its value.
    phases.fill(pad_value);
    let (pt, pl) = (s.pad[0].0, s.pad[1].0);
    for c in 0..s.cout {
        let plane = &x[c * h * iw..(c + 1) * h * iw];
        for (y, src) in plane.chunks_exact(iw).enumerate() {
            for (first, at, count) in phase_row(y, iw, (pt, pl), [sy, sx], [phase_len, cols]) {
                gather(&mut phases[at..at + count], &src[first..], sx);
            }
        }
        acc.fill(start_value);
        // The spans each tap passes over: blocks of the whole grid that stay in the L1 cache
        // across all taps (one long branch-free pass per tap and block); or, where a huge
        // kernel leaves phase rows far wider than their outputs, each row's outputs alone, so
        // that the work stays outputs × taps, what the budget counted.
        let by_rows = cols > 2 * ow;
        let spans = if by_rows {
            oh
        } else {
            grid.div_ceil(WINDOW_BLOCK)
        };
        for span in 0..spans {
            let (from, to) = if by_rows {
                (span * cols, span * cols + ow)
            } else {
                (span * WINDOW_BLOCK, ((span + 1) * WINDOW_BLOCK).min(grid))
            };
            let block = &mut acc[from..to];
            for ky in 0..kh {
                let (ry, qy) = ((ky * dy) % sy, (ky * dy) / sy);
                for kx in 0..kw {
                    let (rx, qx) = ((kx * dx) % sx, (kx * dx) / sx);
                    let start = (ry * sx + rx) * phase_len + qy * cols + qx + from;
                    let src = &phases[start..start + block.len()];
                    match op {
                        Window::Sum(w) => {
                            let wv = w[(c * kh + ky) * kw + kx];
                            for (d, &v) in block.iter_mut().zip(src) {
                                *d += wv * v;
                            }
                        }
                        Window::Max => {
                            for (d, &v) in block.iter_mut().zip(src) {
                                *d = d.max(v);
                            }
                        }
                    }
                }
            }
        }
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        for (dst, src) in o.chunks_exact_mut(ow).zip(acc.chunks_exact(cols)) {
            dst.copy_from_slice(&src[..ow]);
        }
    }
}

/// Where input row `y` (`w` wide) lies in the `stride × stride` phase planes of the input
/// padded by `(top, left)`, each `len` values of rows `cols` wide: per column phase, the first
/// input column in it, that column's position in the planes, and how many columns (`stride`
/// apart in the row, adjacent in the plane) it holds.
#[inline(always)]
pub fn phase_row(
    y: usize,
    w: usize,
    (top, left): (usize, usize),
    [sy, sx]: [usize; 2],
    [len, cols]: [usize; 2],
) -> impl Iterator<Item = (usize, usize, usize)> {
    let py = y + top;
    let row0 = (py % sy) * sx * len + (py / sy) * cols;
    (0..sx).filter_map(move |rx| {
        // The input columns in column phase rx: (x + left) % sx == rx.
        let first = (rx + sx - left % sx) % sx;
        (first < w).then(|| {
            (
                first,
                row0 + rx * len + (first + left) / sx,
                (w - first).div_ceil(sx),
            )
        })
    })
}

/// Max pooling of `batch` NCHW images (`s.groups`, `s.cout` = channels, no weights).
pub fn max_pool2d(x: &[f32], batch: usize, s: &ConvShape) -> Vec<f32> {
    check_len("the input", x.len(), s.input_len(batch));
    let out_image = s.output_len(1);
    let in_image = s.input_len(1);
    let mut out = vec![0.0f32; batch * out_image];
    par_chunks(&mut out, out_image, |b, o| {
        window(&x[b * in_image..(b + 1) * in_image], s, Window::Max, o)
    });
    out
}

/// `dst[j] = src[j * stride]` for every `j` of `dst`.
#[inline(always)]
pub fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
    match stride {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        // Pairs: a pattern the compiler turns into vector shuffles.
        2 => {
            let n = dst.len();
            let pairs = (src.len() / 2).min(n);
            for (d, pair) in dst[..pairs].iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            if pairs < n {
                dst[pairs] = src[2 * pairs];
            }
        }
        _ => {
            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::values;

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
            let c = 3;
            let s = ConvShape::pooling(c, input, kernel, stride, dilation, pad);
            let batch = 2;
            let x = values(batch * c * input[0] * input[1], 400 + i as u32);
            let got = max_pool2d(&x, batch, &s);
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
                        assert_eq!(got[j], m, "case {i} value {j}");
                        j += 1;
                    }
                }
            }
            assert_eq!(j, got.len());
        }
    }

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::assert_every_isa_agrees;
        // Depthwise 3x3 stride 1 and 5x5 stride 2, a wide row-by-row kernel; max pooling.
        let shapes = [
            ([37, 41], [3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([40, 33], [5, 5], [2, 2], [(2, 1), (2, 2)]),
            ([9, 30], [3, 25], [1, 1], [(1, 1), (0, 0)]),
        ];
        for (i, (input, kernel, stride, pad)) in shapes.into_iter().enumerate() {
            let c = 3;
            let s = ConvShape::pooling(c, input, kernel, stride, [1, 1], pad);
            let x = values(c * input[0] * input[1], 500 + i as u32);
            let w = values(c * kernel[0] * kernel[1], 600 + i as u32);
            for op in [Window::Sum(&w), Window::Max] {
                assert_every_isa_agrees(&format!("window case {i}"), |isa| {
                    let mut out = vec![0.0; s.output_len(1)];
                    window_on(isa, &x, &s, op, &mut out, &mut Vec::new());
                    out
                });
            }
        }
    }
}
