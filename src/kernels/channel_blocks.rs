//! Depthwise convolution and max pooling of small planes, [`BLOCK`] channels at a time: the
//! block's input planes interleaved (each padded pixel one vector of its 16 channels), every
//! output a sum (or maximum) of its taps in vector registers (one multiply-add per tap and 16
//! channels), then the planes taken apart again. The plane kernel ([`window`](super::window)) runs each channel on its
//! own, in runs of 64 outputs over padded rows: on a 7×7 plane that computes 128 sums for 49
//! outputs, around two copies and a dozen row copies per channel. On EfficientNet-Lite0's 7×7
//! and 14×14 layers it ran at a quarter to a half of onnxruntime's speed, whose kernel
//! interleaves channels the same way (NCHWc). With AVX-512 the interleaving is by 16×16
//! transposes in registers, and the kernel takes planes up to 56×56; elsewhere it goes value
//! by value and costs more than the sums, and the kernel takes the smallest planes only
//! ([`applies`]).

use std::mem::MaybeUninit;

use super::epilogue::Epilogue;
use super::isa::{Isa, Kernel, isa_dispatch};
use super::matmul::with_scratch;
use super::shape::ConvShape;
use super::uninit::Written;
use super::window::{Window, check};

/// Channels per block: one AVX-512 register of f32 (two AVX2 ones).
pub const BLOCK: usize = 16;

/// Outputs of a row summed in registers together (independent multiply-adds to hide their
/// latency).
const RUN: usize = 4;

/// The largest output plane this kernel takes with AVX-512 (whose registers interleave the
/// channels): EfficientNet-Lite0's depthwise layers (10 images, 2 cores) took 0.50–0.97× the
/// plane kernel's time up to 56×56 outputs (7×7: 0.50–0.61×; 14×14 with 5×5 kernels: 0.8×,
/// with 3×3 equal; the stride-2 layers from 112×112 inputs 0.8×), but 1.1× for its 112×112
/// outputs, whose interleaved input and output (0.8 MiB each) crowd a core's L2 cache.
pub const MAX_PLANE_AVX512: usize = 56 * 56;

/// The same without AVX-512, where the interleaving goes value by value, for a 3×3 kernel;
/// proportionally larger for larger kernels, whose sums pay for more of it. Measured the same
/// way with that interleaving: 7×7 planes 0.60–0.78× the plane kernel's time, 14×14 ones
/// 0.89–0.96× with 5×5 kernels but 1.07× with 3×3, 28×28 ones 1.03–1.23×.
pub const MAX_PLANE_3X3: usize = 9 * 9;

/// The largest padded input plane this kernel interleaves (a 128×128 one: 1 MiB for 16
/// channels, half a core's L2 cache). A larger one, as a huge pooling window's, would be read
/// from memory once per tap.
pub const MAX_PADDED_PLANE: usize = 128 * 128;

/// Whether `s` is a depthwise convolution or pooling this kernel takes when running with
/// `isa`: at least half a block of channels (fewer would leave most lanes idle), a padded
/// input plane up to [`MAX_PADDED_PLANE`], and output planes up to [`MAX_PLANE_AVX512`] with
/// AVX-512, else up to [`MAX_PLANE_3X3`] for a 3×3 kernel and that times `kh·kw / 9` for
/// others.
pub fn applies(s: &ConvShape, isa: Isa) -> bool {
    let [kh, kw] = s.kernel;
    let small = padded_dims(s).is_some_and(|[.., values]| values <= MAX_PADDED_PLANE);
    s.is_depthwise()
        && s.cout >= BLOCK / 2
        && s.input[0] * s.input[1] > 0
        && small
        && s.output().is_some_and(|[oh, ow]| match isa {
            Isa::Avx512 => oh * ow <= MAX_PLANE_AVX512,
            _ => oh * ow * 9 <= MAX_PLANE_3X3 * kh.saturating_mul(kw),
        })
}

/// The padded input plane's rows and columns and its values, if they can be addressed.
fn padded_dims(s: &ConvShape) -> Option<[usize; 3]> {
    let [h, w] = s.input;
    let rows = h.checked_add(s.pad[0].0)?.checked_add(s.pad[0].1)?;
    let cols = w.checked_add(s.pad[1].0)?.checked_add(s.pad[1].1)?;
    Some([rows, cols, rows.checked_mul(cols)?])
}

/// One image of a depthwise convolution (`op`: [`Window::Sum`] with weights `[channels, kh,
/// kw]`) or max pooling ([`Window::Max`]; padding never wins), then `epilogue` (whose
/// residual, if any, is this image's), as the plane kernel ([`window`](super::window::window))
/// computes it. Writes every value of `out` (never read) and returns the receipt.
pub fn run(
    x: &[f32],
    s: &ConvShape,
    op: Window,
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) -> Written {
    check(x, s, op, epilogue, out);
    let isa = Kernel::Window.enter();
    let job = Job {
        arch: isa,
        x,
        s,
        op,
        epilogue,
    };
    with_scratch(|buf| blocks_on(isa, &job, out, buf))
}

/// What one image's window reads, checked against its shape by [`run`].
struct Job<'a> {
    /// The ISA the kernel is compiled for (the interleaving has its own AVX-512 code).
    arch: Isa,
    x: &'a [f32],
    s: &'a ConvShape,
    op: Window<'a>,
    epilogue: &'a Epilogue<'a>,
}

isa_dispatch! {
    /// [`blocks_with`] compiled for `isa` (which the CPU must have: [`Isa::available`]),
    /// `job.arch`.
    fn blocks_on(job: &Job, out: &mut [MaybeUninit<f32>], buf: &mut Vec<f32>) -> Written
        => blocks_with::<FMA>
}

/// The kernel; `buf` is scratch space; `FMA`: fused multiply-adds.
#[inline(always)]
fn blocks_with<const FMA: bool>(
    job: &Job,
    out: &mut [MaybeUninit<f32>],
    buf: &mut Vec<f32>,
) -> Written {
    let Job {
        arch,
        x,
        s,
        op,
        epilogue,
    } = *job;
    let [h, iw] = s.input;
    let [oh, ow] = s.checked_output();
    let (plane_in, plane_out) = (h * iw, oh * ow);
    let weighted = matches!(op, Window::Sum(_));
    // The padding keeps its value (zero; minus infinity for a maximum).
    let fill = if weighted { 0.0 } else { f32::NEG_INFINITY };
    let Some(Scratch {
        pixels,
        weights,
        outputs,
        geometry,
        inner,
    }) = scratch(s, weighted, fill, buf)
    else {
        return Written::nothing_of(out);
    };
    let mut written = Written::nothing_of(out);
    for first in (0..s.cout).step_by(BLOCK) {
        let channels = BLOCK.min(s.cout - first);
        let block_x = &x[first * plane_in..(first + channels) * plane_in];
        interleave(arch, pixels, block_x, plane_in, inner);
        match op {
            Window::Sum(w) => {
                let taps = &w[first * geometry.taps()..(first + channels) * geometry.taps()];
                sum_block::<FMA>(arch, (pixels, weights), taps, &geometry, outputs);
            }
            // SAFETY: every tap of every output lies in `pixels` (`scratch` asserted it).
            Window::Max => unsafe { all_outputs::<FMA, true>(pixels, &[], &geometry, outputs) },
        }
        // The bias, residual and activation, plane by plane once taken apart (applied to the
        // interleaved sums, they ran slower).
        let planes = deinterleave(
            arch,
            &mut out[first * plane_out..(first + channels) * plane_out],
            outputs,
        );
        for (c, plane) in planes.chunks_exact_mut(plane_out).enumerate() {
            let k = first + c;
            let residual = epilogue
                .residual
                .map(|r| &r[k * plane_out..(k + 1) * plane_out]);
            epilogue.apply_channel(k, plane, residual);
        }
        written = written.and(Written::of(planes));
    }
    written
}

/// A depthwise convolution of one image stored pixel by pixel (NHWC: `x` is `[h][w][channels]`,
/// `out` `[oh][ow][channels]`, channels `s.cout`), weights `[channels, kh, kw]`, then
/// `epilogue`'s bias and activation (no residual): [`run`]'s sums, each block's pixels copied
/// in and its outputs out as whole vectors (a pixel's channels lie side by side), with no
/// transposes. Any plane size whose padded input fits [`MAX_PADDED_PLANE`] (asserted by
/// [`scratch`]).
pub fn run_nhwc(x: &[f32], s: &ConvShape, w: &[f32], epilogue: &Epilogue, out: &mut [f32]) {
    let [oh, ow] = s.checked_output();
    assert!(
        s.is_depthwise()
            && x.len() == s.input[0] * s.input[1] * s.cout
            && w.len() == s.weight_len()
            && out.len() == oh * ow * s.cout
            && epilogue.bias.is_none_or(|b| b.len() == s.cout)
            && epilogue.residual.is_none(),
        "a depthwise convolution's NHWC buffers do not fit {s:?}"
    );
    let isa = Kernel::Window.enter();
    let job = Job {
        arch: isa,
        x,
        s,
        op: Window::Sum(w),
        epilogue,
    };
    with_scratch(|buf| nhwc_on(isa, &job, out, buf))
}

isa_dispatch! {
    /// [`nhwc_with`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn nhwc_on(job: &Job, out: &mut [f32], buf: &mut Vec<f32>) => nhwc_with::<FMA>
}

/// [`run_nhwc`]'s kernel (`job.op` a weighted sum); `buf` is scratch space.
#[inline(always)]
fn nhwc_with<const FMA: bool>(job: &Job, out: &mut [f32], buf: &mut Vec<f32>) {
    let Job {
        arch,
        x,
        s,
        op,
        epilogue,
    } = *job;
    let Window::Sum(w) = op else {
        unreachable!("run_nhwc sums with weights");
    };
    let (bias, activation) = (epilogue.bias, epilogue.activation);
    let [h, iw] = s.input;
    let channels = s.cout;
    // The padding stays zero (the last block's lanes past its channels as in `run`: summed
    // with zero weights into outputs nobody reads).
    let Some(Scratch {
        pixels,
        weights,
        outputs,
        geometry,
        inner,
    }) = scratch(s, true, 0.0, buf)
    else {
        return;
    };
    for first in (0..channels).step_by(BLOCK) {
        let n = BLOCK.min(channels - first);
        if n == BLOCK {
            for (i, at) in inner.vectors(h * iw).enumerate() {
                let src: &[f32; BLOCK] = x[i * channels + first..][..BLOCK].try_into().unwrap();
                let dst: &mut [f32; BLOCK] = (&mut pixels[at * BLOCK..at * BLOCK + BLOCK])
                    .try_into()
                    .unwrap();
                *dst = *src;
            }
        } else {
            for (i, at) in inner.vectors(h * iw).enumerate() {
                let src = &x[i * channels + first..i * channels + first + n];
                pixels[at * BLOCK..at * BLOCK + n].copy_from_slice(src);
            }
        }
        let taps = &w[first * geometry.taps()..(first + n) * geometry.taps()];
        sum_block::<FMA>(arch, (pixels, weights), taps, &geometry, outputs);
        let b: [f32; BLOCK] = std::array::from_fn(|l| match bias {
            Some(bias) if l < n => bias[first + l],
            _ => 0.0,
        });
        for (i, sums) in outputs.chunks_exact(BLOCK).enumerate() {
            let dst = &mut out[i * channels + first..i * channels + first + n];
            for ((d, &v), &b) in dst.iter_mut().zip(sums).zip(&b) {
                let v = v + b;
                *d = activation.map_or(v, |a| a.apply(v));
            }
        }
    }
}

/// A block's scratch space for one image of `s`, and where its windows lie.
struct Scratch<'b> {
    /// The block's padded input planes, interleaved (`[rows][cols][BLOCK]`).
    pixels: &'b mut [f32],
    /// The block's weights, interleaved (`[taps][BLOCK]`; empty for a maximum).
    weights: &'b mut [f32],
    /// The block's sums (`[oh][ow][BLOCK]`).
    outputs: &'b mut [f32],
    geometry: Geometry,
    /// Where the input's pixels go in `pixels`.
    inner: Place,
}

/// `buf` laid out as a block's [`Scratch`] for `s` (with `weighted` sums, else a maximum), the
/// padded planes set to `fill` (the padding keeps it: the blocks write the inner pixels
/// only); `None` where there is no output. Asserts that the padded plane fits
/// [`MAX_PADDED_PLANE`] (every buffer is sized from it) and that every tap of every output
/// lies in it (the taps are read unchecked).
fn scratch<'b>(
    s: &ConvShape,
    weighted: bool,
    fill: f32,
    buf: &'b mut Vec<f32>,
) -> Option<Scratch<'b>> {
    let [h, iw] = s.input;
    let [oh, ow] = s.checked_output();
    let [kh, kw] = s.kernel;
    let padded = padded_dims(s)
        .filter(|&[.., values]| values <= MAX_PADDED_PLANE)
        .map(|[rows, cols, _]| [rows, cols])
        .unwrap_or_else(|| panic!("a padded plane too large for channel blocks: {s:?}"));
    if oh * ow == 0 || h * iw == 0 {
        // No output, or only padding in every window (the plane kernel's business).
        assert!(
            oh * ow == 0,
            "an empty input plane in channel blocks: {s:?}"
        );
        return None;
    }
    // Checked in arithmetic that cannot wrap (what `checked_output` ensures).
    let reach = |o: usize, k: usize, stride: usize, dilation: usize| {
        let before = (o - 1).checked_mul(stride)?;
        before.checked_add(k.checked_sub(1)?.checked_mul(dilation)?)
    };
    assert!(
        reach(oh, kh, s.stride[0], s.dilation[0]).is_some_and(|r| r < padded[0])
            && reach(ow, kw, s.stride[1], s.dilation[1]).is_some_and(|r| r < padded[1]),
        "a depthwise window passes its padded input: {s:?}"
    );
    let lens = [
        padded[0] * padded[1] * BLOCK,
        if weighted { kh * kw * BLOCK } else { 0 },
        oh * ow * BLOCK,
    ];
    let need: usize = lens.iter().sum();
    if buf.len() < need {
        buf.resize(need, 0.0);
    }
    let (pixels, rest) = buf[..need].split_at_mut(lens[0]);
    let (weights, outputs) = rest.split_at_mut(lens[1]);
    pixels.fill(fill);
    Some(Scratch {
        pixels,
        weights,
        outputs,
        geometry: Geometry {
            padded_cols: padded[1],
            out: [oh, ow],
            kernel: [kh, kw],
            stride: s.stride,
            dilation: s.dilation,
        },
        inner: Place {
            width: iw,
            stride: padded[1],
            start: s.pad[0].0 * padded[1] + s.pad[1].0,
        },
    })
}

/// A block's weighted sums into `outputs`: its `filters` (`[channels][taps]`, at most
/// [`BLOCK`] channels) interleaved into `weights`, then every output's taps over `pixels`,
/// laid out by [`scratch`] (which asserted that every tap lies in them). Inlined into the
/// kernel of each instruction set (compiled on its own, `FMA` would call `libm`'s `fmaf`).
#[inline(always)]
fn sum_block<const FMA: bool>(
    arch: Isa,
    (pixels, weights): (&[f32], &mut [f32]),
    filters: &[f32],
    geometry: &Geometry,
    outputs: &mut [f32],
) {
    let taps = geometry.taps();
    weights.fill(0.0);
    interleave(arch, weights, filters, taps, Place::row(taps));
    // SAFETY: every tap of every output lies in `pixels` (asserted by `scratch`), and
    // `weights` holds `taps` vectors (its length from `scratch`: checked by `vector`'s
    // debug assertion and the slice bounds above).
    unsafe { all_outputs::<FMA, false>(pixels, weights, geometry, outputs) };
}

/// Where [`interleave`] puts the pixels of a plane: rows of `width` pixels, `stride` vectors
/// apart, the first at vector `start` (a padded plane's inner pixels).
#[derive(Clone, Copy)]
struct Place {
    width: usize,
    stride: usize,
    start: usize,
}

impl Place {
    /// A plane of `width` values as one row from vector 0.
    fn row(width: usize) -> Self {
        Place {
            width,
            stride: width,
            start: 0,
        }
    }

    /// The vector of pixel `i`.
    fn of(self, i: usize) -> usize {
        self.start + i / self.width * self.stride + i % self.width
    }

    /// The vectors of pixels `0..count`, in order (without a division each).
    fn vectors(self, count: usize) -> impl Iterator<Item = usize> {
        let (mut row, mut x) = (self.start, 0);
        (0..count).map(move |_| {
            let at = row + x;
            x += 1;
            if x == self.width {
                (row, x) = (row + self.stride, 0);
            }
            at
        })
    }
}

/// `dst[place.of(i) · BLOCK + c] = src[c · plane + i]`: each of the planes of `src` (`plane`
/// values, at most [`BLOCK`] planes) as lane `c` of `dst`'s vectors, placed by `place`; the
/// placed vectors' other lanes are left as they were or zeroed, the other vectors alone. By 16×16
/// transposes in registers on AVX-512 (`arch`), else value by value, each vector written whole
/// before the next (channel by channel, its cache lines were written sixteen times and left the
/// L1 cache in between).
fn interleave(arch: Isa, dst: &mut [f32], src: &[f32], plane: usize, place: Place) {
    let channels = src.len() / plane.max(1);
    assert!(
        channels <= BLOCK
            && place.width > 0
            && (plane == 0 || (place.of(plane - 1) + 1) * BLOCK <= dst.len()),
        "{channels} planes of {plane} do not fit {} values",
        dst.len()
    );
    #[cfg(target_arch = "x86_64")]
    if arch == Isa::Avx512 && Isa::Avx512.available() {
        // SAFETY: the CPU has AVX-512 (checked), and the sizes fit (asserted above).
        return unsafe { avx512::interleave(dst, src, plane, place) };
    }
    let _ = arch;
    interleave_values(dst, src, plane, place);
}

/// [`interleave`] value by value. Compiled apart from the kernel (for the build's baseline):
/// the vectoriser made AVX-512 scatters and gathers of it.
#[inline(never)]
fn interleave_values(dst: &mut [f32], src: &[f32], plane: usize, place: Place) {
    let channels = src.len() / plane.max(1);
    for (i, vector) in place.vectors(plane).enumerate() {
        let at = vector * BLOCK;
        for (c, lane) in dst[at..at + channels].iter_mut().enumerate() {
            *lane = src[c * plane + i];
        }
    }
}

/// Writes `planes[c · plane + i] = src[i · BLOCK + c]` for the `planes.len() / plane`
/// channels (at most [`BLOCK`]), `plane` being as long as `src` has vectors; returns them.
fn deinterleave<'p>(arch: Isa, planes: &'p mut [MaybeUninit<f32>], src: &[f32]) -> &'p mut [f32] {
    let plane = src.len() / BLOCK;
    assert!(
        plane > 0 && planes.len().is_multiple_of(plane) && planes.len() / plane <= BLOCK,
        "{} values are not whole planes of {plane}",
        planes.len()
    );
    write_planes(arch, planes, src);
    let (ptr, len) = (planes.as_mut_ptr().cast::<f32>(), planes.len());
    // SAFETY: every value of `planes` was just written (each lane of each of `src`'s vectors
    // for every channel covers them all), and this unique borrow covers them.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// [`deinterleave`]'s writes: by 16×16 transposes on AVX-512 (`arch`), else value by value.
fn write_planes(arch: Isa, planes: &mut [MaybeUninit<f32>], src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if arch == Isa::Avx512 && Isa::Avx512.available() {
        // SAFETY: the CPU has AVX-512 (checked), and the sizes fit (asserted by the caller).
        return unsafe { avx512::deinterleave(planes, src) };
    }
    let _ = arch;
    deinterleave_values(planes, src);
}

/// [`deinterleave`] value by value (see [`interleave_values`]).
#[inline(never)]
fn deinterleave_values(planes: &mut [MaybeUninit<f32>], src: &[f32]) {
    let plane = src.len() / BLOCK;
    let channels = planes.len() / plane;
    for (i, vector) in src.chunks_exact(BLOCK).enumerate() {
        for (c, &v) in vector[..channels].iter().enumerate() {
            planes[c * plane + i].write(v);
        }
    }
}

/// The interleaving by 16×16 transposes in AVX-512 registers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{BLOCK, Place};

    /// The transpose of the 16×16 matrix whose rows are `r`: row `c` of the result holds
    /// element `c` of every row. Four rounds of shuffles: 32-bit pairs, 64-bit pairs, then
    /// 128-bit quarters twice.
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [__m512; 16]) -> [__m512; 16] {
        let mut t = r;
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let pd = _mm512_castps_pd;
        let mut u = t;
        for g in 0..4 {
            let [a, b, c, d] = [t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]];
            u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
        }
        // u[4g + m], quarter k: column 4k + m of rows 4g..4g + 4.
        let mut v = u;
        for half in 0..2 {
            for m in 0..4 {
                let (a, b) = (u[8 * half + m], u[8 * half + 4 + m]);
                v[8 * half + m] = _mm512_shuffle_f32x4::<0x88>(a, b);
                v[8 * half + 4 + m] = _mm512_shuffle_f32x4::<0xdd>(a, b);
            }
        }
        let mut w = v;
        for j in 0..8 {
            w[j] = _mm512_shuffle_f32x4::<0x88>(v[j], v[8 + j]);
            w[8 + j] = _mm512_shuffle_f32x4::<0xdd>(v[j], v[8 + j]);
        }
        w
    }

    /// The lanes of the first `n` values (at most 16).
    fn first(n: usize) -> __mmask16 {
        if n >= 16 { u16::MAX } else { (1u16 << n) - 1 }
    }

    /// [`super::interleave`].
    ///
    /// # Safety
    /// The CPU has AVX-512F; `src` holds at most 16 planes of `plane` values, and `dst` holds
    /// the vector `place` puts each pixel in.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave(dst: &mut [f32], src: &[f32], plane: usize, place: Place) {
        if plane == 0 {
            return;
        }
        let channels = src.len() / plane;
        let mut vectors = place.vectors(plane);
        for x0 in (0..plane).step_by(16) {
            let n = (plane - x0).min(16);
            let mut rows = [_mm512_setzero_ps(); 16];
            for (c, row) in rows[..channels].iter_mut().enumerate() {
                // SAFETY: the first n values from here lie in plane c of `src` (the
                // caller's contract); the masked lanes are not read.
                *row = unsafe { _mm512_maskz_loadu_ps(first(n), src.as_ptr().add(c * plane + x0)) };
            }
            for (vector, at) in transpose(rows)[..n].iter().zip(vectors.by_ref()) {
                let at = at * BLOCK;
                // SAFETY: the pixel's vector lies in `dst` (bounds-checked slice).
                unsafe { _mm512_storeu_ps(dst[at..at + BLOCK].as_mut_ptr(), *vector) };
            }
        }
    }

    /// [`super::deinterleave`]'s writes.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `planes` holds at most 16 whole planes of `src.len() / 16`
    /// values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deinterleave(planes: &mut [MaybeUninit<f32>], src: &[f32]) {
        let plane = src.len() / BLOCK;
        let channels = planes.len() / plane;
        for p0 in (0..plane).step_by(16) {
            let n = (plane - p0).min(16);
            let mut vectors = [_mm512_setzero_ps(); 16];
            for (p, vector) in vectors[..n].iter_mut().enumerate() {
                let at = (p0 + p) * BLOCK;
                // SAFETY: vector p0 + p < plane lies in `src`.
                *vector = unsafe { _mm512_loadu_ps(src[at..at + BLOCK].as_ptr()) };
            }
            for (c, lanes) in transpose(vectors)[..channels].iter().enumerate() {
                let at = c * plane + p0;
                // SAFETY: the first n values from `at` lie in plane c of `planes` (the
                // caller's contract); the masked lanes are not written.
                unsafe {
                    _mm512_mask_storeu_ps(planes[at..].as_mut_ptr().cast::<f32>(), first(n), *lanes)
                };
            }
        }
    }
}

/// Every output of a block into `outputs` (`[oh][ow][BLOCK]`), [`RUN`] of a row at a time:
/// [`sum_taps`], or with `MAX` the maximum over the taps.
///
/// # Safety
/// Every tap of every output lies in `pixels`, and `weights` holds `kh·kw` vectors unless
/// `MAX`.
#[inline(always)]
unsafe fn all_outputs<const FMA: bool, const MAX: bool>(
    pixels: &[f32],
    weights: &[f32],
    g: &Geometry,
    outputs: &mut [f32],
) {
    let [oh, ow] = g.out;
    for (oy, row) in outputs.chunks_exact_mut(ow * BLOCK).take(oh).enumerate() {
        let whole = ow - ow % RUN;
        for ox in (0..whole).step_by(RUN) {
            let dst = &mut row[ox * BLOCK..(ox + RUN) * BLOCK];
            // SAFETY: the caller's contract.
            unsafe { sum_taps::<FMA, MAX, RUN>(pixels, weights, g, [oy, ox], dst) };
        }
        for ox in whole..ow {
            let dst = &mut row[ox * BLOCK..(ox + 1) * BLOCK];
            // SAFETY: as above.
            unsafe { sum_taps::<FMA, MAX, 1>(pixels, weights, g, [oy, ox], dst) };
        }
    }
}

impl Geometry {
    /// Taps per window.
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// Where a block's windows lie in its interleaved, padded input.
struct Geometry {
    /// Pixels per padded row.
    padded_cols: usize,
    out: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
}

/// `dst[r][l] = sum over taps t of weights[t][l] * pixels[tap t of output (oy, ox + r)][l]`,
/// for `R` outputs of a row and the block's [`BLOCK`] channels `l`, summed in registers in tap
/// order; with `MAX`, the maximum of the pixels instead (no weights).
///
/// # Safety
/// Every tap of these outputs lies in `pixels`: `(oy·sy + (kh-1)·dy) · padded_cols + (ox +
/// R - 1)·sx + (kw-1)·dx < pixels.len() / BLOCK`, and `weights` holds `kh·kw` vectors unless
/// `MAX`.
#[inline(always)]
unsafe fn sum_taps<const FMA: bool, const MAX: bool, const R: usize>(
    pixels: &[f32],
    weights: &[f32],
    g: &Geometry,
    [oy, ox]: [usize; 2],
    dst: &mut [f32],
) {
    let mut acc = [[if MAX { f32::NEG_INFINITY } else { 0.0 }; BLOCK]; R];
    let [kh, kw] = g.kernel;
    for ky in 0..kh {
        let row = (oy * g.stride[0] + ky * g.dilation[0]) * g.padded_cols;
        for kx in 0..kw {
            for (r, sum) in acc.iter_mut().enumerate() {
                let pixel = row + (ox + r) * g.stride[1] + kx * g.dilation[1];
                // SAFETY: the tap lies in `pixels` (the caller's contract).
                let v = unsafe { vector(pixels, pixel) };
                if MAX {
                    for (s, &v) in sum.iter_mut().zip(v) {
                        *s = s.max(v);
                    }
                    continue;
                }
                // SAFETY: `weights` holds kh·kw vectors (the caller's contract).
                let wv = unsafe { vector(weights, ky * kw + kx) };
                for ((s, &w), &v) in sum.iter_mut().zip(wv).zip(v) {
                    *s = if FMA { w.mul_add(v, *s) } else { *s + w * v };
                }
            }
        }
    }
    debug_assert!(g.out[1] >= ox + R);
    for (d, sum) in dst.chunks_exact_mut(BLOCK).zip(&acc) {
        d.copy_from_slice(sum);
    }
}

/// Vector `i` (values `i·BLOCK..(i + 1)·BLOCK`) of `values`.
///
/// # Safety
/// `(i + 1) · BLOCK <= values.len()`.
#[inline(always)]
unsafe fn vector(values: &[f32], i: usize) -> &[f32; BLOCK] {
    debug_assert!((i + 1) * BLOCK <= values.len());
    // SAFETY: the vector lies in `values` (the caller's contract); any f32 array may be read
    // from f32s.
    unsafe { &*values.as_ptr().add(i * BLOCK).cast::<[f32; BLOCK]>() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::testing::{
        assert_epilogue_matches, assert_every_isa_agrees, conv_shape, reference, values,
    };
    use crate::kernels::uninit::written_in_parts;

    /// Shapes around the kernel's edges: channels not a multiple of the block, rows not a
    /// multiple of the run, strides, dilation, asymmetric padding, a kernel as large as the
    /// padded input.
    fn shapes() -> Vec<ConvShape> {
        [
            (16, [7, 7], [5, 5], [1, 1], [1, 1], [(2, 2), (2, 2)]),
            (21, [14, 14], [3, 3], [2, 2], [1, 1], [(0, 1), (0, 1)]),
            (5, [9, 11], [3, 3], [1, 2], [2, 1], [(2, 1), (1, 2)]),
            (33, [14, 14], [5, 5], [1, 1], [1, 1], [(2, 2), (2, 2)]),
            (3, [2, 3], [3, 4], [1, 1], [1, 1], [(1, 0), (1, 0)]),
        ]
        .into_iter()
        .map(|(c, input, kernel, stride, dilation, pad)| {
            conv_shape((c, input, c, c, kernel, stride, dilation, pad))
        })
        .collect()
    }

    #[test]
    fn matches_the_definition_with_every_epilogue() {
        for (i, s) in shapes().into_iter().enumerate() {
            let seed = 700 + 10 * i as u32;
            let x = values(s.input_len(1), seed);
            let w = values(s.weight_len(), seed + 1);
            let bias = values(s.cout, seed + 2);
            let want = reference(&x, 1, &s, &w, Some(&bias));
            let residual = values(want.len(), seed + 3);
            for (residual, activation) in [
                (None, None),
                (None, Some(Activation::Clip(0.0, 6.0))),
                (Some(&residual[..]), Some(Activation::Relu)),
            ] {
                let epilogue = Epilogue {
                    bias: Some(&bias),
                    residual,
                    activation,
                };
                let got = written_in_parts(1, s.output_len(1), |_, out| {
                    run(&x, &s, Window::Sum(&w), &epilogue, out)
                });
                let what = format!("case {i}");
                assert_epilogue_matches(&what, &got, &want, residual, activation);
            }
        }
    }

    #[test]
    fn takes_the_small_planes_it_pays_on() {
        let depthwise = |size, k| ConvShape {
            cin: 32,
            input: [size, size],
            cout: 32,
            groups: 32,
            kernel: [k, k],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [(k / 2, k / 2); 2],
        };
        let taken = |size, k| applies(&depthwise(size, k), Isa::Avx2);
        assert!(taken(7, 3) && taken(9, 3) && taken(7, 5) && taken(14, 5));
        assert!(!taken(10, 3) && !taken(14, 3) && !taken(28, 5) && !taken(56, 3));
        let wide = |size, k| applies(&depthwise(size, k), Isa::Avx512);
        assert!(wide(7, 3) && wide(14, 3) && wide(28, 5) && wide(56, 3));
        assert!(!wide(57, 3) && !wide(112, 3));
        let grouped = ConvShape {
            groups: 16,
            ..depthwise(7, 3)
        };
        assert!(!applies(&grouped, Isa::Avx512), "two channels per group");
        let few = ConvShape {
            cin: 4,
            cout: 4,
            groups: 4,
            ..depthwise(7, 3)
        };
        assert!(!applies(&few, Isa::Avx512), "4 channels: most lanes idle");
        let huge_window =
            ConvShape::pooling(16, [1024, 1024], [1000, 1000], [1, 1], [1, 1], [(0, 0); 2]);
        assert!(
            !applies(&huge_window, Isa::Avx512),
            "a 1024x1024 plane to interleave"
        );
    }

    /// The interleaving puts each value where the definition says, and takes planes apart
    /// again, on every ISA path (the AVX-512 transposes with partial blocks of pixels and
    /// channels), leaving every other value of `dst` alone.
    #[test]
    fn interleaving_follows_the_definition() {
        for (plane, channels, width) in [(1, 1, 1), (15, 7, 5), (17, 16, 17), (33, 9, 4)] {
            let src = values(channels * plane, plane as u32);
            let place = Place {
                width,
                stride: width + 3,
                start: 2,
            };
            let vectors = place.of(plane - 1) + 2;
            let mut want = vec![-7.0; vectors * BLOCK];
            for i in 0..plane {
                for c in 0..channels {
                    want[place.of(i) * BLOCK + c] = src[c * plane + i];
                }
            }
            let interleaved: Vec<f32> = (0..plane * BLOCK)
                .map(|v| {
                    if v % BLOCK < channels {
                        v as f32 * 0.25
                    } else {
                        0.5
                    }
                })
                .collect();
            let placed: Vec<usize> = (0..plane).map(|i| place.of(i)).collect();
            for isa in Isa::supported() {
                let mut got = vec![-7.0; vectors * BLOCK];
                interleave(isa, &mut got, &src, plane, place);
                for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                    // The lanes past the channels of a placed vector are left unspecified.
                    if placed.contains(&(j / BLOCK)) && j % BLOCK >= channels {
                        continue;
                    }
                    assert_eq!(g, w, "{isa:?}: {plane} pixels of {channels} channels, {j}");
                }
                let mut planes = vec![MaybeUninit::new(-1.0f32); channels * plane];
                let apart = deinterleave(isa, &mut planes, &interleaved).to_vec();
                for (j, v) in apart.iter().enumerate() {
                    let (c, i) = (j / plane, j % plane);
                    assert_eq!(*v, interleaved[i * BLOCK + c], "{isa:?}: apart {j}");
                }
            }
        }
    }

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        for (i, s) in shapes().into_iter().enumerate() {
            let x = values(s.input_len(1), 800 + i as u32);
            let w = values(s.weight_len(), 900 + i as u32);
            assert_every_isa_agrees(&format!("depthwise block case {i}"), |isa| {
                written_in_parts(1, s.output_len(1), |_, out| {
                    let job = Job {
                        arch: isa,
                        x: &x,
                        s: &s,
                        op: Window::Sum(&w),
                        epilogue: &Epilogue::default(),
                    };
                    blocks_on(isa, &job, out, &mut Vec::new())
                })
            });
        }
    }
}
