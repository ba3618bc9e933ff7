//! 2-D convolution on the host for Burn's CPU backend, where the backbone pass (no gradients
//! needed) spends nearly all of its time. Burn flex's convolution converts every input to NHWC,
//! re-lays the weights out on each call and runs one small matrix product per tile of 512
//! outputs; this kernel does neither:
//! - im2col in NCHW, with rows in the ONNX weight order `(ci, ky, kx)`, so the weights are used
//!   as stored and every row is a shifted copy of an input row;
//! - one `gemm` call per image and group (a 1×1 stride-1 convolution multiplies the input
//!   directly), images spread over the thread pool, the scratch buffer kept per thread;
//! - depthwise convolutions (one input channel per group) as shifted multiply-adds on padded
//!   phase planes, the same kernel as max pooling ([`window`]);
//! - the bias, a residual addition and the activation that follow the convolution in the graph
//!   applied in the same pass over each image's output (see [`Epilogue`]).

use std::cell::RefCell;

use super::cpu_par::{gemm_parallelism, par_chunks, threads};

/// Shape and options of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub cout: usize,
    /// Groups.
    pub groups: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides (height, width).
    pub stride: [usize; 2],
    /// Dilations (height, width).
    pub dilation: [usize; 2],
    /// (begin, end) padding per spatial axis.
    pub pad: [(usize, usize); 2],
}

impl ConvShape {
    /// The shape of a pooling window over `channels` planes of `input` (no weights).
    pub fn pooling(
        channels: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        pad: [(usize, usize); 2],
    ) -> Self {
        Self {
            cin: channels,
            input,
            cout: channels,
            groups: channels,
            kernel,
            stride,
            dilation,
            pad,
        }
    }

    /// Output height and width, `None` when the kernel does not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let padded = self.input[i] + self.pad[i].0 + self.pad[i].1;
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            padded.checked_sub(span).map(|d| d / self.stride[i] + 1)
        };
        Some([dim(0)?, dim(1)?])
    }

    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [(0, 0); 2]
    }

    pub(super) fn is_depthwise(&self) -> bool {
        self.groups == self.cin && self.groups == self.cout && self.groups > 1
    }
}

/// An element-wise activation the kernel can apply to its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)` (ReLU6 is `Clip(0, 6)`).
    Clip(f32, f32),
    /// `x` for `x >= 0`, else `slope * x`.
    LeakyRelu(f32),
}

impl Activation {
    /// Whether its derivative can be read off its output (not for a `LeakyRelu` whose slope
    /// does not keep the sign).
    pub fn derivative_from_output(self) -> bool {
        !matches!(self, Activation::LeakyRelu(slope) if slope <= 0.0)
    }

    /// Its derivative at the input that gave output `y` (where
    /// [`Activation::derivative_from_output`]): for `Clip`, 1 strictly inside the bounds, as
    /// PyTorch's `hardtanh_backward`.
    #[inline]
    pub fn derivative_at_output(self, y: f32) -> f32 {
        match self {
            Activation::Relu => f32::from(u8::from(y > 0.0)),
            Activation::Clip(lo, hi) => f32::from(u8::from(y > lo && y < hi)),
            Activation::LeakyRelu(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
        }
    }

    /// The activation of one value.
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Relu => v.max(0.0),
            Activation::Clip(lo, hi) => v.max(lo).min(hi),
            Activation::LeakyRelu(slope) => {
                if v >= 0.0 {
                    v
                } else {
                    v * slope
                }
            }
        }
    }
}

/// What happens to the convolution's output in the same pass, in this order: `+ bias[c]`,
/// `+ residual` (a tensor of the output's shape), then the activation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Per-output-channel bias.
    pub bias: Option<&'a [f32]>,
    /// A tensor added element-wise (a residual connection), NCHW like the output.
    pub residual: Option<&'a [f32]>,
    /// The activation applied last.
    pub activation: Option<Activation>,
}

impl Epilogue<'_> {
    /// Applies to one image's output `[cout, plane]`; `residual` is that image's residual.
    fn apply(&self, out: &mut [f32], plane: usize, residual: Option<&[f32]>) {
        if self.bias.is_none() && residual.is_none() && self.activation.is_none() {
            return;
        }
        for (c, o) in out.chunks_mut(plane).enumerate() {
            let b = self.bias.map_or(0.0, |b| b[c]);
            let r = residual.map(|r| &r[c * plane..(c + 1) * plane]);
            match (r, self.activation) {
                (None, None) => o.iter_mut().for_each(|v| *v += b),
                (None, Some(a)) => o.iter_mut().for_each(|v| *v = a.apply(*v + b)),
                (Some(r), None) => o.iter_mut().zip(r).for_each(|(v, &r)| *v += b + r),
                (Some(r), Some(a)) => o
                    .iter_mut()
                    .zip(r)
                    .for_each(|(v, &r)| *v = a.apply(*v + b + r)),
            }
        }
    }
}

thread_local! {
    /// The im2col buffer of this thread, grown to the largest convolution seen.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Convolves `batch` NCHW images `x` with weights `w` (`[cout, cin / groups, kh, kw]`,
/// row-major), then applies `epilogue`; returns NCHW outputs.
pub fn conv2d(x: &[f32], batch: usize, s: &ConvShape, w: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    let [oh, ow] = s.output().expect("checked by the caller");
    let out_image = s.cout * oh * ow;
    let in_image = s.cin * s.input[0] * s.input[1];
    let mut out = vec![0.0f32; batch * out_image];
    let threads = threads();
    // Few images: let the matrix product use the threads instead.
    let inner_parallel = batch < threads;
    let run = |b: usize, out_b: &mut [f32]| {
        let x_b = &x[b * in_image..(b + 1) * in_image];
        if s.is_depthwise() {
            window(x_b, s, Window::Sum(w), out_b);
        } else {
            grouped(x_b, s, w, out_b, inner_parallel);
        }
        let residual = epilogue
            .residual
            .map(|r| &r[b * out_image..(b + 1) * out_image]);
        epilogue.apply(out_b, oh * ow, residual);
    };
    par_chunks(&mut out, out_image, run);
    out
}

/// One group's matrix product within one image's convolution: its sizes and how it may use
/// the threads (shared by the forward kernel and the input gradient).
pub(super) struct GroupProduct {
    /// Output pixels per channel (`oh * ow`).
    pub n: usize,
    /// Input channels per group.
    pub cin_g: usize,
    /// Output channels per group.
    pub cout_g: usize,
    /// The inner dimension: `cin_g * kh * kw`.
    pub k: usize,
    /// Input pixels per channel.
    pub plane: usize,
    /// Threads for the product: few images leave the threads to it.
    pub parallelism: gemm::Parallelism,
}

impl GroupProduct {
    /// The product of `s`'s groups; `inner_parallel` when the images do not fill the threads.
    pub(super) fn of(s: &ConvShape, inner_parallel: bool) -> Self {
        let [oh, ow] = s.output().expect("checked by the caller");
        let n = oh * ow;
        let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
        let k = cin_g * s.kernel[0] * s.kernel[1];
        let parallelism = if inner_parallel && cout_g * n * k >= 1 << 21 {
            gemm_parallelism()
        } else {
            gemm::Parallelism::None
        };
        Self {
            n,
            cin_g,
            cout_g,
            k,
            plane: s.input[0] * s.input[1],
            parallelism,
        }
    }
}

/// Runs `f` on this thread's column buffer, `len` values long (grown to the largest seen).
pub(super) fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLUMNS.with(|cell| {
        let mut columns = cell.borrow_mut();
        if columns.len() < len {
            columns.resize(len, 0.0);
        }
        f(&mut columns[..len])
    })
}

/// `dst = lhs · rhs` for row-major `dst` (`m × n`) and `rhs` (`k × n`), with `lhs` row-major
/// `m × k`, or stored `k × m` and used transposed (`lhs_transposed`).
pub(super) fn matmul(
    dst: &mut [f32],
    [m, n, k]: [usize; 3],
    lhs: &[f32],
    lhs_transposed: bool,
    rhs: &[f32],
    parallelism: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // Row-major m x k: column stride 1, row stride k; transposed storage k x m: the reverse.
    let (lhs_cs, lhs_rs) = if lhs_transposed { (m, 1) } else { (1, k) };
    // SAFETY: the three operands hold at least the values the strides address (checked just
    // above), and dst, a unique borrow, does not alias lhs or rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// One image, any groups: im2col (unless pointwise) and one matrix product per group.
fn grouped(x: &[f32], s: &ConvShape, w: &[f32], out: &mut [f32], inner_parallel: bool) {
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
        for g in 0..s.groups {
            let x_g = &x[g * cin_g * plane..(g + 1) * cin_g * plane];
            let rhs: &[f32] = if s.is_pointwise() {
                x_g
            } else {
                im2col(x_g, cin_g, s, columns);
                columns
            };
            let w_g = &w[g * cout_g * k..(g + 1) * cout_g * k];
            let dst = &mut out[g * cout_g * n..(g + 1) * cout_g * n];
            matmul(dst, [cout_g, n, k], w_g, false, rhs, parallelism);
        }
    });
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

/// `dst[j] = src[j * stride]` for every `j` of `dst`.
#[inline(always)]
fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
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

/// Fills `columns` (`[cin_g * kh * kw, oh * ow]`, rows in `(ci, ky, kx)` order) from one
/// group's input planes.
fn im2col(x: &[f32], cin_g: usize, s: &ConvShape, columns: &mut [f32]) {
    let [h, w] = s.input;
    let [oh, ow] = s.output().expect("checked by the caller");
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
    COLUMNS.with(|cell| {
        let mut buf = cell.borrow_mut();
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { window_avx2(x, s, op, out, &mut buf) };
        }
        window_with(x, s, op, out, &mut buf);
    })
}

/// Output values per block of the window accumulation (8 KiB: well inside L1).
const WINDOW_BLOCK: usize = 2048;

/// [`window_with`] compiled for AVX2 (8 lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn window_avx2(x: &[f32], s: &ConvShape, op: Window, out: &mut [f32], buf: &mut Vec<f32>) {
    window_with(x, s, op, out, buf);
}

/// The window kernel; `buf` is scratch space. Written without closures, so that all of it is
/// compiled with the features of the function it is inlined into.
#[inline(always)]
fn window_with(x: &[f32], s: &ConvShape, op: Window, out: &mut [f32], buf: &mut Vec<f32>) {
    let [h, iw] = s.input;
    let [oh, ow] = s.output().expect("checked by the caller");
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
        // In blocks that stay in the L1 cache across all taps.
        for from in (0..grid).step_by(WINDOW_BLOCK) {
            let to = (from + WINDOW_BLOCK).min(grid);
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
pub(super) fn phase_row(
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
    let [oh, ow] = s.output().expect("checked by the caller");
    let out_image = s.cout * oh * ow;
    let in_image = s.cin * s.input[0] * s.input[1];
    let mut out = vec![0.0f32; batch * out_image];
    par_chunks(&mut out, out_image, |b, o| {
        window(&x[b * in_image..(b + 1) * in_image], s, Window::Max, o)
    });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct definition of the convolution, for checking the kernels.
    fn reference(
        x: &[f32],
        batch: usize,
        s: &ConvShape,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let [h, wd] = s.input;
        let [oh, ow] = s.output().unwrap();
        let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
        let mut out = vec![0.0; batch * s.cout * oh * ow];
        for b in 0..batch {
            for co in 0..s.cout {
                let g = co / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias.map_or(0.0, |bv| f64::from(bv[co]));
                        for ci in 0..cin_g {
                            for ky in 0..s.kernel[0] {
                                for kx in 0..s.kernel[1] {
                                    let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                        - s.pad[0].0 as isize;
                                    let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                        - s.pad[1].0 as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((b * s.cin + g * cin_g + ci) * h + iy as usize) * wd
                                        + ix as usize;
                                    let wi =
                                        ((co * cin_g + ci) * s.kernel[0] + ky) * s.kernel[1] + kx;
                                    acc += f64::from(x[xi]) * f64::from(w[wi]);
                                }
                            }
                        }
                        out[((b * s.cout + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    /// A small deterministic pseudo-random sequence in [-1, 1).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

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
    fn max_pooling_matches_the_definition() {
        for (i, (input, kernel, stride, dilation, pad)) in [
            ([9, 9], [3, 3], [2, 2], [1, 1], [(1, 1), (1, 1)]),
            ([8, 7], [2, 2], [2, 2], [1, 1], [(0, 0), (0, 0)]),
            ([10, 11], [3, 2], [1, 3], [2, 1], [(2, 0), (1, 1)]),
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
