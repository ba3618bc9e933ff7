//! `exp`, `erf` and the softmax of rows, written so that the compiler vectorises them (no
//! library call per value): the transformers' GELU (`Erf`) and attention softmax, which Burn's
//! CPU backend runs one value at a time through `libm`. Each runs in parallel over chunks,
//! with the widest instruction set the CPU has ([`isa`](super::isa)).
//!
//! Accuracy (checked against the standard library's `f64` functions in the tests): `exp` within
//! 2e-7 relative, `erf` within 2e-7 absolute and 1e-6 relative. That is float32 rounding: the
//! maps that use them stay within 1e-6 of those made with Burn's own.

use super::isa::{Kernel, isa_dispatch};
use super::par::par_chunks;

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
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid,
    /// SiLU (swish), `x / (1 + e^-x)`.
    Silu,
}

/// `f` of every value, in place, in parallel.
pub fn in_place(f: Elementwise, values: &mut [f32]) {
    let isa = Kernel::Transcendental.enter();
    let kernel = match f {
        Elementwise::Erf => erf_on,
        Elementwise::Exp => exp_on,
        Elementwise::Gelu => gelu_on,
        Elementwise::Sigmoid => sigmoid_on,
        Elementwise::Silu => silu_on,
    };
    par_chunks(values, CHUNK, |_, chunk| kernel(isa, chunk));
}

/// Lanes of the reductions: wide enough for any vector unit, so that the sums vectorise.
const LANES: usize = 16;

/// The softmax of one row, in place: `e^{x - max}` over its sum.
#[inline(always)]
fn softmax_row<const FMA: bool>(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
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

/// The softmax of each row of `len` values (the last axis), in place, rows in parallel.
pub fn softmax_rows(values: &mut [f32], len: usize) {
    assert!(
        len > 0 && values.len().is_multiple_of(len),
        "{} values do not make rows of {len}",
        values.len()
    );
    let isa = Kernel::Transcendental.enter();
    let rows = (CHUNK / len).max(1);
    par_chunks(values, rows * len, |_, chunk| softmax_on(isa, chunk, len));
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
            let mut got = [x];
            in_place(Elementwise::Sigmoid, &mut got);
            let got = f64::from(got[0]);
            assert!(
                (got - want).abs() <= 3e-7 * want + 1e-37,
                "sigmoid({x}) = {got}, exactly {want}"
            );
        }
        let mut ends = [-1e4, 1e4, f32::NEG_INFINITY, f32::INFINITY];
        in_place(Elementwise::Sigmoid, &mut ends);
        assert!(ends[0] < 1e-37 && ends[2] < 1e-37, "{ends:?}");
        assert_eq!([ends[1], ends[3]], [1.0, 1.0]);
    }

    #[test]
    fn gelu_is_within_float_rounding_of_the_exact_value() {
        for x in grid() {
            let x64 = f64::from(x);
            let want = 0.5 * x64 * (1.0 + libm::erf(x64 / std::f64::consts::SQRT_2));
            let mut got = [x];
            in_place(Elementwise::Gelu, &mut got);
            let got = f64::from(got[0]);
            // Where erf is -1 to within rounding, 1 + erf cancels: an absolute error of x
            // times half of erf's error, at most 2e-7 (as in PyTorch's own float32 GELU).
            assert!(
                (got - want).abs() <= 3e-7 * want.abs() + 1.2e-7 * x64.abs(),
                "gelu({x}) = {got}, exactly {want}"
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
            let mut got = values.clone();
            softmax_rows(&mut got, len);
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
    fn every_isa_path_gives_the_portable_result() {
        let values = grid();
        assert_every_isa_agrees("erf", |isa| {
            let mut v = values.clone();
            erf_on(isa, &mut v);
            v
        });
        assert_every_isa_agrees("exp", |isa| {
            let mut v: Vec<f32> = values.iter().map(|x| x / 2.0).collect();
            exp_on(isa, &mut v);
            v
        });
        assert_every_isa_agrees("gelu", |isa| {
            let mut v = values.clone();
            gelu_on(isa, &mut v);
            v
        });
        assert_every_isa_agrees("sigmoid", |isa| {
            let mut v = values.clone();
            sigmoid_on(isa, &mut v);
            v
        });
        assert_every_isa_agrees("silu", |isa| {
            let mut v = values.clone();
            silu_on(isa, &mut v);
            v
        });
        assert_every_isa_agrees("softmax", |isa| {
            let mut v = values[..197 * 100].to_vec();
            softmax_on(isa, &mut v, 197);
            v
        });
    }
}
