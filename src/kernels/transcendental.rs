//! `exp`, `erf` and the softmax of rows, written so that the compiler vectorises them (no
//! library call per value): the transformers' GELU (`Erf`) and attention softmax, which Burn's
//! CPU backend runs one value at a time through `libm`. Each runs in parallel over chunks,
//! with the widest instruction set the CPU has ([`isa`](super::isa)).
//!
//! Accuracy (checked against the standard library's `f64` functions in the tests): `exp` within
//! 2e-7 relative, `erf` within 2e-7 absolute and 1e-6 relative. That is float32 rounding: the
//! maps that use them stay within 1e-6 of those made with Burn's own.

use super::isa::{Isa, Kernel, isa_dispatch};
use super::lanes::{LANES, fold, sum_of};
use super::par::par_chunks;
use super::uninit::{Written, written_in_chunks};

/// Values per parallel chunk: enough to pay for a task.
const CHUNK: usize = 1 << 14;

/// `e^x` (Cody and Waite's reduction `x = n ln 2 + r`, `|r| ≤ ln 2 / 2`, then `e^r` by its
/// Taylor series to `r^7` and `2^n` from the exponent bits). Below -87.3 it returns about
/// 1e-38 where the exact value underflows; NaN gives NaN. Only float arithmetic and bit
/// operations, so that a loop of it vectorises (Rust's saturating `as i32` would not).
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5 · 2^23: adding it leaves a whole number of magnitude below 2^22 in the low bits.
    const SHIFT: f32 = 12_582_912.0;
    const TAYLOR: [f32; 8] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    let p = horner::<FMA>(r, &TAYLOR);
    // n in (n + SHIFT)'s low mantissa bits, then biased into an exponent field.
    let biased = (n + SHIFT)
        .to_bits()
        .wrapping_sub(SHIFT.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// `a · b + c`, fused where the build has FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The polynomial with `coefficients` (the highest first) at `x`, by Horner's rule.
#[inline(always)]
fn horner<const FMA: bool>(x: f32, coefficients: &[f32]) -> f32 {
    coefficients[1..]
        .iter()
        .fold(coefficients[0], |p, &c| madd::<FMA>(p, x, c))
}

/// The Maclaurin coefficients of `erf(x) √π / (2x)` in `x²`, the highest first:
/// `(-1)^n / (n! (2n + 1))` for n = 13 down to 0 (below 1 in magnitude the next term is under
/// 1e-11).
const SERIES: [f32; 14] = [
    -5.947794e-12,
    8.350703e-11,
    -1.0892222e-09,
    1.3122533e-08,
    -1.4503853e-07,
    1.4589169e-06,
    -1.3227514e-05,
    0.00010683761,
    -0.00075757573,
    0.0046296297,
    -0.023809524,
    0.1,
    -0.33333334,
    1.0,
];

/// The error function: its Maclaurin series to `x^27` below 1 in magnitude, Abramowitz and
/// Stegun's 7.1.26 (`1 - t·P(t)·e^{-x²}`, `t = 1 / (1 + 0.3275911 |x|)`, absolute error
/// ≤ 1.5e-7) above.
#[inline(always)]
pub fn erf<const FMA: bool>(x: f32) -> f32 {
    const RATIONAL: [f32; 5] = [
        1.061_405_4,
        -1.453_152_1,
        1.421_413_8,
        -0.284_496_72,
        0.254_829_6,
    ];
    let a = x.abs();
    let t = 1.0 / madd::<FMA>(0.327_591_1, a, 1.0);
    let far = 1.0 - horner::<FMA>(t, &RATIONAL) * t * exp::<FMA>(-a * a);
    let q = horner::<FMA>(x * x, &SERIES);
    let near = std::f32::consts::FRAC_2_SQRT_PI * q * a;
    let magnitude = if a < 1.0 { near } else { far };
    magnitude.copysign(x)
}

/// `f` of every value, in place (inlined into each ISA's copy of its caller, where the loop
/// vectorises).
#[inline(always)]
fn each(values: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in values {
        *v = f(*v);
    }
}

/// [`erf`] of every value, in place.
#[inline(always)]
fn erf_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, erf::<FMA>);
}

/// [`exp`] of every value, in place.
#[inline(always)]
fn exp_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, exp::<FMA>);
}

/// The logistic function `1 / (1 + e^-x)` of every value, in place (from [`exp`]: within 3e-7
/// of the exact value, 0 and 1 at the far ends).
#[inline(always)]
fn sigmoid_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, |x| 1.0 / (1.0 + exp::<FMA>(-x)));
}

/// SiLU (swish) `x · σ(x)` of every value, in place: the logistic function as
/// [`sigmoid_slice`] computes it, times `x` (the same value as the two ops one after another).
#[inline(always)]
fn silu_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, |x| x * (1.0 / (1.0 + exp::<FMA>(-x))));
}

/// The exact GELU `x/2 · (1 + erf(x / √2))` of every value, in place (from [`erf`]).
#[inline(always)]
fn gelu_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, |x| {
        0.5 * x * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
    });
}

/// SiLU's derivative `σ + x σ (1 - σ)` at every value, in place (σ as [`sigmoid_slice`]
/// computes it).
#[inline(always)]
fn silu_derivative_slice<const FMA: bool>(values: &mut [f32]) {
    each(values, |x| {
        let s = 1.0 / (1.0 + exp::<FMA>(-x));
        s + x * s * (1.0 - s)
    });
}

isa_dispatch! {
    /// [`silu_derivative_slice`] compiled for `isa` (which the CPU must have:
    /// [`Isa::available`]).
    fn silu_derivative_on(values: &mut [f32]) => silu_derivative_slice::<FMA>
}

/// The exact GELU's derivative `Φ(x) + x φ(x)` (the normal distribution's CDF and density)
/// at every value, in place (from [`erf`] and [`exp`]).
#[inline(always)]
fn gelu_derivative_slice<const FMA: bool>(values: &mut [f32]) {
    /// `1 / √(2π)`.
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    each(values, |x| {
        let cdf = 0.5 * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2));
        madd::<FMA>(x * FRAC_1_SQRT_2PI, exp::<FMA>(-0.5 * x * x), cdf)
    });
}

isa_dispatch! {
    /// [`gelu_derivative_slice`] compiled for `isa` (which the CPU must have:
    /// [`Isa::available`]).
    fn gelu_derivative_on(values: &mut [f32]) => gelu_derivative_slice::<FMA>
}

isa_dispatch! {
    /// [`gelu_slice`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn gelu_on(values: &mut [f32]) => gelu_slice::<FMA>
}

isa_dispatch! {
    /// [`sigmoid_slice`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn sigmoid_on(values: &mut [f32]) => sigmoid_slice::<FMA>
}

isa_dispatch! {
    /// [`silu_slice`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn silu_on(values: &mut [f32]) => silu_slice::<FMA>
}

isa_dispatch! {
    /// [`erf_slice`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn erf_on(values: &mut [f32]) => erf_slice::<FMA>
}

isa_dispatch! {
    /// [`exp_slice`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn exp_on(values: &mut [f32]) => exp_slice::<FMA>
}

/// An elementwise function with a vectorised kernel here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elementwise {
    /// The error function ([`erf`]).
    Erf,
    /// `e^x` ([`exp`]).
    Exp,
    /// The exact GELU, `x/2 · (1 + erf(x / √2))`.
    Gelu,
    /// The exact GELU's derivative, `Φ(x) + x φ(x)`.
    GeluDerivative,
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid,
    /// SiLU (swish), `x / (1 + e^-x)`.
    Silu,
    /// SiLU's derivative, `σ + x σ (1 - σ)`.
    SiluDerivative,
}

impl Elementwise {
    /// Every function, for the tests that run each kernel.
    #[cfg(test)]
    const ALL: [Elementwise; 7] = [
        Elementwise::Erf,
        Elementwise::Exp,
        Elementwise::Gelu,
        Elementwise::GeluDerivative,
        Elementwise::Sigmoid,
        Elementwise::Silu,
        Elementwise::SiluDerivative,
    ];
}

/// The kernel computing `f` in place.
fn kernel_of(f: Elementwise) -> fn(Isa, &mut [f32]) {
    match f {
        Elementwise::Erf => erf_on,
        Elementwise::Exp => exp_on,
        Elementwise::Gelu => gelu_on,
        Elementwise::GeluDerivative => gelu_derivative_on,
        Elementwise::Sigmoid => sigmoid_on,
        Elementwise::Silu => silu_on,
        Elementwise::SiluDerivative => silu_derivative_on,
    }
}

/// `f` of every value, in place, in parallel.
pub fn in_place(f: Elementwise, values: &mut [f32]) {
    let (isa, kernel) = (Kernel::Transcendental.enter(), kernel_of(f));
    par_chunks(values, CHUNK, |_, chunk| kernel(isa, chunk));
}

/// `f` of every value of `values`, in parallel (each chunk copied into the output, where it
/// stays in the cache for `f`).
pub fn mapped(f: Elementwise, values: &[f32]) -> Vec<f32> {
    let (isa, kernel) = (Kernel::Transcendental.enter(), kernel_of(f));
    written_in_chunks(values.len(), CHUNK, |i, out| {
        let out = out.write_copy_of_slice(&values[i * CHUNK..][..out.len()]);
        kernel(isa, out);
        Written::of(out)
    })
}

/// `f(x) · g` for every value `x` of `values` and `g` of `factors` (an activation's gradient:
/// its derivative times the output's gradient), in parallel, one pass.
pub fn mapped_times(f: Elementwise, values: &[f32], factors: &[f32]) -> Vec<f32> {
    assert_eq!(values.len(), factors.len(), "a factor for every value");
    let (isa, kernel) = (Kernel::Transcendental.enter(), kernel_of(f));
    written_in_chunks(values.len(), CHUNK, |i, out| {
        let at = i * CHUNK..i * CHUNK + out.len();
        let out = out.write_copy_of_slice(&values[at.clone()]);
        kernel(isa, out);
        for (o, &g) in out.iter_mut().zip(&factors[at]) {
            *o *= g;
        }
        Written::of(out)
    })
}

/// The softmax of one row, in place: `e^{x - max}` over its sum.
#[inline(always)]
fn softmax_row<const FMA: bool>(row: &mut [f32]) {
    let max = fold(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *v = exp::<FMA>(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = 0.0;
    for v in chunks.into_remainder() {
        *v = exp::<FMA>(*v - max);
        sum += *v;
    }
    let scale = 1.0 / (sum + sums.iter().sum::<f32>());
    for v in row {
        *v *= scale;
    }
}

/// [`softmax_row`] over every row of `len` values.
#[inline(always)]
fn softmax_rows_of<const FMA: bool>(values: &mut [f32], len: usize) {
    for row in values.chunks_exact_mut(len) {
        softmax_row::<FMA>(row);
    }
}

isa_dispatch! {
    /// [`softmax_rows_of`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn softmax_on(values: &mut [f32], len: usize) => softmax_rows_of::<FMA>
}

/// The softmax's input gradient for one row: `y (g - Σ g y)`, from its output `y` and the
/// output's gradient `g`, into `out`.
#[inline(always)]
fn softmax_grad_row(y: &[f32], g: &[f32], out: &mut [f32]) {
    let dot = sum_of(y, g, |y, g| g * y);
    for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
        *o = y * (g - dot);
    }
}

/// [`softmax_grad_row`] over every row of `len` values.
#[inline(always)]
fn softmax_grad_rows(y: &[f32], g: &[f32], out: &mut [f32], len: usize) {
    let rows = y.chunks_exact(len).zip(g.chunks_exact(len));
    for ((y, g), o) in rows.zip(out.chunks_exact_mut(len)) {
        softmax_grad_row(y, g, o);
    }
}

isa_dispatch! {
    /// [`softmax_grad_rows`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn softmax_grad_on(y: &[f32], g: &[f32], out: &mut [f32], len: usize) => softmax_grad_rows
}

/// The input gradient of a softmax over rows of `len` values, from its output `y` and the
/// output's gradient `g`: `y (g - Σ g y)` along each row, rows in parallel.
pub fn softmax_gradient(y: &[f32], g: &[f32], len: usize) -> Vec<f32> {
    assert_eq!(g.len(), y.len(), "a gradient for every value");
    let chunk = rows_task(y.len(), len);
    let isa = Kernel::Transcendental.enter();
    let mut out = vec![0.0; y.len()];
    par_chunks(&mut out, chunk, |i, o| {
        let at = i * chunk..i * chunk + o.len();
        softmax_grad_on(isa, &y[at.clone()], &g[at], o, len);
    });
    out
}

/// Values per parallel task for rows of `len` values (whole rows); panics unless `values`
/// make whole rows.
fn rows_task(values: usize, len: usize) -> usize {
    assert!(
        len > 0 && values.is_multiple_of(len),
        "{values} values do not make rows of {len}"
    );
    (CHUNK / len).max(1) * len
}

/// The softmax of each row of `len` values, in place, on this thread (a task's own rows).
pub fn softmax_rows_here(values: &mut [f32], len: usize) {
    rows_task(values.len(), len);
    softmax_on(Kernel::Transcendental.enter(), values, len);
}

/// The softmax of each row of `len` values (the last axis), in place, rows in parallel.
pub fn softmax_rows_in_place(values: &mut [f32], len: usize) {
    let chunk = rows_task(values.len(), len);
    let isa = Kernel::Transcendental.enter();
    par_chunks(values, chunk, |_, rows| softmax_on(isa, rows, len));
}

/// The softmax of each row of `len` values (the last axis) of `values`, rows in parallel.
pub fn softmax_rows(values: &[f32], len: usize) -> Vec<f32> {
    let chunk = rows_task(values.len(), len);
    let isa = Kernel::Transcendental.enter();
    written_in_chunks(values.len(), chunk, |i, out| {
        let out = out.write_copy_of_slice(&values[i * chunk..][..out.len()]);
        softmax_on(isa, out, len);
        Written::of(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::assert_every_isa_agrees;

    /// Values from -12 to 12 with every fraction, the edges of the series' range included.
    fn grid() -> Vec<f32> {
        let mut v: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        v.extend([
            0.5,
            -0.5,
            0.499_999_97,
            1e-30,
            -1e-30,
            0.0,
            -0.0,
            40.0,
            -40.0,
        ]);
        v
    }

    #[test]
    fn exp_is_within_float_rounding_of_the_exact_value() {
        for x in grid()
            .into_iter()
            .chain((-87..=88).map(|i| i as f32 + 0.37))
        {
            let want = f64::from(x).exp();
            let got = f64::from(exp::<false>(x));
            let fused = f64::from(exp::<true>(x));
            assert!(
                ((fused - want) / want).abs() <= 2e-7,
                "exp::<true>({x}) = {fused}"
            );
            assert!(
                ((got - want) / want).abs() <= 2e-7,
                "exp({x}) = {got}, exactly {want}"
            );
        }
        assert!(exp::<false>(-200.0) < 1e-37);
        assert!(exp::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_float_rounding_of_the_exact_value() {
        for x in grid() {
            let want = libm::erf(f64::from(x));
            let got = f64::from(erf::<false>(x));
            let error = (got - want).abs();
            assert!(
                error <= 2e-7 && error <= 1e-6 * want.abs().max(1e-30) + 1e-37,
                "erf({x}) = {got}, exactly {want}"
            );
        }
        assert_eq!(erf::<false>(0.0), 0.0);
        assert!(erf::<false>(-0.0).is_sign_negative());
    }

    #[test]
    fn sigmoid_is_within_float_rounding_of_the_exact_value() {
        for x in grid().into_iter().chain([-100.0, -88.0, 88.0, 100.0]) {
            let want = 1.0 / (1.0 + (-f64::from(x)).exp());
            let got = f64::from(mapped(Elementwise::Sigmoid, &[x])[0]);
            assert!(
                (got - want).abs() <= 3e-7 * want + 1e-37,
                "sigmoid({x}) = {got}, exactly {want}"
            );
        }
        let ends = mapped(
            Elementwise::Sigmoid,
            &[-1e4, 1e4, f32::NEG_INFINITY, f32::INFINITY],
        );
        assert!(ends[0] < 1e-37 && ends[2] < 1e-37, "{ends:?}");
        assert_eq!([ends[1], ends[3]], [1.0, 1.0]);
    }

    #[test]
    fn gelu_is_within_float_rounding_of_the_exact_value() {
        for x in grid() {
            let x64 = f64::from(x);
            let want = 0.5 * x64 * (1.0 + libm::erf(x64 / std::f64::consts::SQRT_2));
            let got = f64::from(mapped(Elementwise::Gelu, &[x])[0]);
            // Where erf is -1 to within rounding, 1 + erf cancels: an absolute error of x
            // times half of erf's error, at most 2e-7 (as in PyTorch's own float32 GELU).
            assert!(
                (got - want).abs() <= 3e-7 * want.abs() + 1.2e-7 * x64.abs(),
                "gelu({x}) = {got}, exactly {want}"
            );
        }
    }

    #[test]
    fn gelu_derivative_is_within_float_rounding_of_the_exact_value() {
        for x in grid() {
            let x64 = f64::from(x);
            let cdf = 0.5 * (1.0 + libm::erf(x64 / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let want = cdf + x64 * pdf;
            let got = f64::from(mapped(Elementwise::GeluDerivative, &[x])[0]);
            assert!(
                (got - want).abs() <= 1e-6 * want.abs() + 3e-7,
                "gelu'({x}) = {got}, exactly {want}"
            );
        }
    }

    #[test]
    fn softmax_rows_match_the_definition() {
        for len in [1, 7, 16, 197, 1000] {
            let rows = 5;
            let values: Vec<f32> = (0..rows * len)
                .map(|i| ((i * 7919 % 1013) as f32) / 50.0 - 10.0)
                .collect();
            let got = softmax_rows(&values, len);
            for (r, row) in values.chunks(len).enumerate() {
                let max = row
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
                let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                for (i, &v) in row.iter().enumerate() {
                    let want = (f64::from(v) - max).exp() / sum;
                    let g = f64::from(got[r * len + i]);
                    assert!(
                        (g - want).abs() <= 1e-6 * want + 1e-12,
                        "row {r} of {len}, value {i}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_softmax_gradient_matches_the_jacobian() {
        let len = 37;
        let x: Vec<f32> = (0..3 * len)
            .map(|i| ((i * 31 % 23) as f32) / 5.0 - 2.0)
            .collect();
        let g: Vec<f32> = (0..3 * len)
            .map(|i| ((i * 17 % 13) as f32) / 6.0 - 1.0)
            .collect();
        let y = softmax_rows(&x, len);
        let got = softmax_gradient(&y, &g, len);
        for r in 0..3 {
            let row = r * len..(r + 1) * len;
            let (y, g) = (&y[row.clone()], &g[row]);
            for i in 0..len {
                // dx_i = Σ_j g_j ∂y_j/∂x_i, ∂y_j/∂x_i = y_j (δ_ij - y_i).
                let want: f64 = (0..len)
                    .map(|j| {
                        let delta = if i == j { 1.0 } else { 0.0 };
                        f64::from(g[j]) * f64::from(y[j]) * (delta - f64::from(y[i]))
                    })
                    .sum();
                let v = f64::from(got[r * len + i]);
                assert!((v - want).abs() <= 1e-6, "row {r}, {i}: {v} vs {want}");
            }
        }
    }

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        let values = grid();
        for f in Elementwise::ALL {
            let kernel = kernel_of(f);
            assert_every_isa_agrees(&format!("{f:?}"), |isa| {
                // exp's arguments halved, to stay clear of its overflow.
                let scale = if f == Elementwise::Exp { 0.5 } else { 1.0 };
                let mut v: Vec<f32> = values.iter().map(|x| x * scale).collect();
                kernel(isa, &mut v);
                v
            });
        }
        assert_every_isa_agrees("softmax gradient", |isa| {
            let (y, g) = (&values[..197 * 50], &values[197 * 50..197 * 100]);
            let mut out = vec![0.0; y.len()];
            softmax_grad_on(isa, y, g, &mut out, 197);
            out
        });
        assert_every_isa_agrees("softmax", |isa| {
            let mut v = values[..197 * 100].to_vec();
            softmax_on(isa, &mut v, 197);
            v
        });
    }
}
