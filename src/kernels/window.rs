//! Sliding-window kernels over padded phase planes: depthwise convolution and max pooling,
//! one image at a time, every channel on its own.

use std::mem::MaybeUninit;

use super::epilogue::Epilogue;
use super::isa::{Kernel, isa_dispatch};
use super::matmul::with_scratch;
use super::shape::{ConvShape, check_len};
use super::uninit::Written;

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
/// every channel on its own, then `epilogue` (whose residual, if any, is this image's). Each
/// input plane is copied once, padded, into `stride × stride` phase planes (phase `(ry, rx)`
/// holds padded rows `ry, ry + sy, ...` and columns `rx, rx + sx, ...`). In phase coordinates
/// every tap is a plain shift, so on an output grid as wide as a phase row each run of
/// [`LANES`] outputs sums all its taps in registers, one load and one multiply-add per tap and
/// lane; the valid columns are copied out at the end, the epilogue applied to each row while
/// it is in the L1 cache. Writes every value of `out` (never read) and returns the receipt.
pub fn window(
    x: &[f32],
    s: &ConvShape,
    op: Window,
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) -> Written {
    check(x, s, op, epilogue, out);
    let isa = Kernel::Window.enter();
    with_scratch(|buf| window_on(isa, x, s, op, epilogue, out, buf))
}

/// Asserts that one image's input `x`, `op`'s weights, `epilogue` and `out` fit `s`, whose
/// channels each go on their own: the checks of every sliding-window kernel.
pub fn check(x: &[f32], s: &ConvShape, op: Window, epilogue: &Epilogue, out: &[MaybeUninit<f32>]) {
    assert!(
        s.cin == s.cout && s.groups == s.cin,
        "a window runs every channel on its own: {s:?}"
    );
    check_len("the input", x.len(), s.input_len(1));
    check_len("the output", out.len(), s.output_len(1));
    if let Window::Sum(w) = op {
        check_len("the weights", w.len(), s.weight_len());
    }
    epilogue.check(s, 1);
}

isa_dispatch! {
    /// [`window_with`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn window_on(
        x: &[f32],
        s: &ConvShape,
        op: Window,
        epilogue: &Epilogue,
        out: &mut [MaybeUninit<f32>],
        buf: &mut Vec<f32>,
    ) -> Written => window_with::<FMA>
}

/// Outputs summed in registers at a time: 4 AVX-512 or 8 AVX2 registers, enough independent
/// multiply-adds to hide their latency; in the browser 4 of wasm's 128-bit registers (the
/// engine maps them onto the host's 16, which 16 accumulators would spill).
pub const LANES: usize = if cfg!(target_arch = "wasm32") { 16 } else { 64 };

/// The window kernel; `buf` is scratch space; `FMA`: fused multiply-adds. Written without
/// closures, so that all of it is compiled with the features of the function it is inlined
/// into.
#[inline(always)]
fn window_with<const FMA: bool>(
    x: &[f32],
    s: &ConvShape,
    op: Window,
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
    buf: &mut Vec<f32>,
) -> Written {
    let [h, iw] = s.input;
    let [oh, ow] = s.checked_output();
    let [kh, kw] = s.kernel;
    // One spare row per phase plane, so that every tap's run stays inside.
    let layout = PhaseLayout::of(s, 1);
    let cols = layout.cols();
    // The output grid: `oh` rows of `cols` (the first `ow` of each are real outputs).
    let grid = oh * cols;
    // A run of LANES may pass the planes' and the grid's ends by less than LANES.
    let planes_len = layout.planes_len() + LANES;
    let need = planes_len + grid + LANES;
    if buf.len() < need {
        buf.resize(need, 0.0);
    }
    let (phases, acc) = buf[..need].split_at_mut(planes_len);
    let pad_value = match op {
        Window::Sum(_) => 0.0,
        Window::Max => f32::NEG_INFINITY,
    };
    // Every channel writes the same (inner) positions: the padding keeps its value.
    phases.fill(pad_value);
    let taps: Vec<usize> = (0..kh * kw).map(|t| layout.tap(t / kw, t % kw)).collect();
    let plane_out = oh * ow;
    // Without a residual, the epilogue is applied to each run while it is in registers; with
    // one, to each output row (laid out unlike the grid) as it is copied out.
    let residual = epilogue.residual;
    let in_registers = residual.is_none().then_some(epilogue);
    let mut written = Written::nothing_of(out);
    for c in 0..s.cout {
        let plane = &x[c * h * iw..(c + 1) * h * iw];
        for (src, row) in plane.chunks_exact(iw).zip(layout.row_starts()) {
            for &(first, at, count) in layout.columns() {
                let at = row + at;
                gather(&mut phases[at..at + count], &src[first..], s.stride[1]);
            }
        }
        let weights = match op {
            Window::Sum(w) => &w[c * kh * kw..(c + 1) * kh * kw],
            Window::Max => &[][..],
        };
        // The runs cover the whole grid; or, where a huge kernel leaves phase rows far wider
        // than their outputs, each row's outputs alone, so that the work stays outputs ×
        // taps, what the budget counted.
        let by_rows = cols > 2 * ow;
        let (spans, span_len) = if by_rows { (oh, ow) } else { (1, grid) };
        for span in 0..spans {
            let from = if by_rows { span * cols } else { 0 };
            for at in (from..from + span_len).step_by(LANES) {
                let run: &mut [f32; LANES] = (&mut acc[at..at + LANES]).try_into().unwrap();
                match op {
                    Window::Sum(_) => sum_taps::<FMA>(run, phases, &taps, weights, at),
                    Window::Max => max_taps(run, phases, &taps, at),
                }
                if let Some(e) = in_registers {
                    e.apply_channel(c, run, None);
                }
            }
        }
        let o = &mut out[c * plane_out..(c + 1) * plane_out];
        for (oy, (dst, src)) in o.chunks_exact_mut(ow).zip(acc.chunks(cols)).enumerate() {
            let row = dst.write_copy_of_slice(&src[..ow]);
            if let Some(r) = residual {
                let r = &r[c * plane_out + oy * ow..c * plane_out + (oy + 1) * ow];
                epilogue.apply_channel(c, row, Some(r));
            }
            written = written.and(Written::of(row));
        }
    }
    written
}

/// `run[j] = sum_t weights[t] * phases[taps[t] + at + j]`.
#[inline(always)]
fn sum_taps<const FMA: bool>(
    run: &mut [f32; LANES],
    phases: &[f32],
    taps: &[usize],
    weights: &[f32],
    at: usize,
) {
    let mut sum = [0.0f32; LANES];
    for (&tap, &w) in taps.iter().zip(weights) {
        let src: &[f32; LANES] = phases[tap + at..tap + at + LANES].try_into().unwrap();
        for (s, &v) in sum.iter_mut().zip(src) {
            *s = if FMA { w.mul_add(v, *s) } else { *s + w * v };
        }
    }
    *run = sum;
}

/// `run[j] = max_t phases[taps[t] + at + j]`.
#[inline(always)]
fn max_taps(run: &mut [f32; LANES], phases: &[f32], taps: &[usize], at: usize) {
    let mut max = [f32::NEG_INFINITY; LANES];
    for &tap in taps {
        let src: &[f32; LANES] = phases[tap + at..tap + at + LANES].try_into().unwrap();
        for (m, &v) in max.iter_mut().zip(src) {
            *m = m.max(v);
        }
    }
    *run = max;
}

/// The `stride × stride` phase planes of a convolution's or pooling's input, padded as its
/// shape pads it (phase `(ry, rx)` holds padded rows `ry, ry + sy, ...` and columns `rx, rx +
/// sx, ...`): their sizes, where each input row lies in them and where each tap's run starts.
/// Worked out once per shape: copying the rows then takes no division.
pub struct PhaseLayout {
    /// Per column phase: the first input column in it, that column's offset from the row's
    /// start in the planes, and how many columns (`stride` apart in the row, adjacent in the
    /// plane) it holds.
    columns: Vec<(usize, usize, usize)>,
    top: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Values per phase plane.
    len: usize,
    /// Values per phase row.
    cols: usize,
}

impl PhaseLayout {
    /// The phase planes of `s`'s input, each with `spare_rows` rows more than the padded input
    /// needs.
    pub fn of(s: &ConvShape, spare_rows: usize) -> Self {
        let [h, w] = s.input;
        let [sy, sx] = s.stride;
        let ((top, bottom), (left, right)) = (s.pad[0], s.pad[1]);
        let (rows, cols) = (
            (h + top + bottom).div_ceil(sy) + spare_rows,
            (w + left + right).div_ceil(sx),
        );
        let len = rows * cols;
        let columns = (0..sx)
            .filter_map(|rx| {
                // The input columns in column phase rx: (x + left) % sx == rx.
                let first = (rx + sx - left % sx) % sx;
                (first < w).then(|| {
                    (
                        first,
                        rx * len + (first + left) / sx,
                        (w - first).div_ceil(sx),
                    )
                })
            })
            .collect();
        PhaseLayout {
            columns,
            top,
            stride: s.stride,
            dilation: s.dilation,
            len,
            cols,
        }
    }

    /// Values in all the planes together.
    pub fn planes_len(&self) -> usize {
        self.stride[0] * self.stride[1] * self.len
    }

    /// Values per phase row: the width of the output grid the taps run over.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Where tap `(ky, kx)`'s run starts in the planes, relative to its output's position in
    /// the grid.
    pub fn tap(&self, ky: usize, kx: usize) -> usize {
        let ([sy, sx], [dy, dx]) = (self.stride, self.dilation);
        let (y, x) = (ky * dy, kx * dx);
        ((y % sy) * sx + x % sx) * self.len + (y / sy) * self.cols + x / sx
    }

    /// Where rows `0, 1, ...` start in the planes (their first column phase's row).
    pub fn row_starts(&self) -> impl Iterator<Item = usize> + '_ {
        let [sy, sx] = self.stride;
        let (mut ry, mut qy) = (self.top % sy, self.top / sy);
        std::iter::repeat_with(move || {
            let start = ry * sx * self.len + qy * self.cols;
            ry += 1;
            if ry == sy {
                (ry, qy) = (0, qy + 1);
            }
            start
        })
    }

    /// Per column phase: the first input column in it, its offset from a row's start, and
    /// its number of columns.
    pub fn columns(&self) -> &[(usize, usize, usize)] {
        &self.columns
    }
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
    use crate::kernels::uninit::written_in_parts;

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
                    let e = Epilogue::default();
                    written_in_parts(1, s.output_len(1), |_, out| {
                        window_on(isa, &x, &s, op, &e, out, &mut Vec::new())
                    })
                });
            }
        }
    }
}
