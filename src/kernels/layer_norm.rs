//! Layer normalisation of rows (the last axis), forward and backward: a transformer block
//! normalises its tokens twice, which Burn's CPU backend does in six passes of separate
//! reductions and broadcasts. Here each row is read, reduced and written in one task, rows in
//! parallel, with the widest instruction set the CPU has ([`isa`](super::isa)).
//!
//! The statistics are float32 sums over 16 lanes (as PyTorch's vectorised kernel keeps
//! several), the variance from the centred values (two passes over the row, as Burn's).

use super::isa::{Kernel, isa_dispatch};
use super::lanes::sum_of;
use super::par::par_chunks;

/// Values per parallel task (whole rows).
const CHUNK: usize = 1 << 14;

/// The mean of the row and `1 / √(variance + eps)`.
#[inline(always)]
fn statistics(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_of(row, row, |x, _| x) / n;
    let var = sum_of(row, row, |x, _| (x - mean) * (x - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The forward pass over every row of `x`, into `out`.
#[inline(always)]
fn forward_rows(x: &[f32], out: &mut [f32], scale: &[f32], bias: &[f32], eps: f32) {
    let len = scale.len();
    for (row, o) in x.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        let (mean, r) = statistics(row, eps);
        for (((o, &x), &s), &b) in o.iter_mut().zip(row).zip(scale).zip(bias) {
            *o = (x - mean) * r * s + b;
        }
    }
}

isa_dispatch! {
    /// [`forward_rows`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn forward_on(x: &[f32], out: &mut [f32], scale: &[f32], bias: &[f32], eps: f32) => forward_rows
}

/// The input gradient over every row: `dx = r (ĝ - mean(ĝ) - x̂ mean(ĝ x̂))` with `ĝ = g ·
/// scale` and `x̂ = (x - mean) r`, into `out`.
#[inline(always)]
fn backward_rows(x: &[f32], g: &[f32], out: &mut [f32], scale: &[f32], eps: f32) {
    let len = scale.len();
    let n = len as f32;
    let rows = x.chunks_exact(len).zip(g.chunks_exact(len));
    for ((row, g), o) in rows.zip(out.chunks_exact_mut(len)) {
        let (mean, r) = statistics(row, eps);
        // ĝ into `o` first, then its means.
        for ((o, &g), &s) in o.iter_mut().zip(g).zip(scale) {
            *o = g * s;
        }
        let g_mean = sum_of(o, o, |g, _| g) / n;
        let along = sum_of(o, row, |g, x| g * (x - mean) * r) / n;
        for (o, &x) in o.iter_mut().zip(row) {
            *o = (*o - g_mean - (x - mean) * r * along) * r;
        }
    }
}

isa_dispatch! {
    /// [`backward_rows`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn backward_on(x: &[f32], g: &[f32], out: &mut [f32], scale: &[f32], eps: f32) => backward_rows
}

/// Rows per parallel task for rows of `len` values.
fn rows_per_task(len: usize) -> usize {
    (CHUNK / len).max(1)
}

/// Checks that `values` make whole rows of `scale.len()` values.
fn assert_rows(values: usize, scale: &[f32]) {
    assert!(
        !scale.is_empty() && values.is_multiple_of(scale.len()),
        "{values} values do not make rows of {}",
        scale.len()
    );
}

/// Each row of `x` (rows of `scale.len()` values) normalised to mean 0 and variance 1, times
/// `scale`, plus `bias` (zero where `None`).
pub fn forward(x: &[f32], scale: &[f32], bias: Option<&[f32]>, eps: f32) -> Vec<f32> {
    assert_rows(x.len(), scale);
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = vec![0.0; scale.len()];
            &zeros
        }
    };
    assert_eq!(bias.len(), scale.len(), "a bias for every scale");
    let isa = Kernel::Normalize.enter();
    let mut out = vec![0.0; x.len()];
    let task = rows_per_task(scale.len()) * scale.len();
    par_chunks(&mut out, task, |i, o| {
        forward_on(isa, &x[i * task..][..o.len()], o, scale, bias, eps);
    });
    out
}

/// The gradient of [`forward`]'s output `g` as the gradient of its input `x` (the scale and
/// bias are constants).
pub fn backward(x: &[f32], g: &[f32], scale: &[f32], eps: f32) -> Vec<f32> {
    assert_rows(x.len(), scale);
    assert_eq!(x.len(), g.len(), "a gradient for every value");
    let isa = Kernel::Normalize.enter();
    let mut out = vec![0.0; x.len()];
    let task = rows_per_task(scale.len()) * scale.len();
    par_chunks(&mut out, task, |i, o| {
        let at = i * task..i * task + o.len();
        backward_on(isa, &x[at.clone()], &g[at], o, scale, eps);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::assert_every_isa_agrees;

    /// Rows of `len` values with a spread and an offset, so that the centring matters.
    fn rows(count: usize, len: usize) -> Vec<f32> {
        (0..count * len)
            .map(|i| ((i * 7919 % 1013) as f32) / 100.0 - 3.0 + (i / len) as f32)
            .collect()
    }

    fn scale_and_bias(len: usize) -> (Vec<f32>, Vec<f32>) {
        let scale = (0..len).map(|i| 0.5 + (i % 7) as f32 / 5.0).collect();
        let bias = (0..len).map(|i| (i % 5) as f32 / 10.0 - 0.2).collect();
        (scale, bias)
    }

    /// The definition in float64.
    fn reference(row: &[f32], eps: f64) -> (f64, f64) {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, 1.0 / (var + eps).sqrt())
    }

    #[test]
    fn forward_matches_the_definition() {
        for len in [1, 5, 16, 384, 1000] {
            let (x, (scale, bias)) = (rows(7, len), scale_and_bias(len));
            let got = forward(&x, &scale, Some(&bias), 1e-6);
            for (r, row) in x.chunks(len).enumerate() {
                let (mean, inv) = reference(row, 1e-6);
                for i in 0..len {
                    let want =
                        (f64::from(row[i]) - mean) * inv * f64::from(scale[i]) + f64::from(bias[i]);
                    let g = f64::from(got[r * len + i]);
                    assert!(
                        (g - want).abs() <= 2e-5,
                        "row {r} of {len}, {i}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn backward_matches_the_central_difference() {
        let len = 40;
        let (x, (scale, bias)) = (rows(3, len), scale_and_bias(len));
        // A weighted sum of the outputs as the objective: its gradient is the weights.
        let weights: Vec<f32> = (0..x.len())
            .map(|i| ((i * 31 % 17) as f32) / 8.0 - 1.0)
            .collect();
        let got = backward(&x, &weights, &scale, 1e-5);
        let objective = |x: &[f64]| -> f64 {
            let mut sum = 0.0;
            for (r, row) in x.chunks(len).enumerate() {
                let n = len as f64;
                let mean = row.iter().sum::<f64>() / n;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let inv = 1.0 / (var + 1e-5).sqrt();
                for i in 0..len {
                    let y = (row[i] - mean) * inv * f64::from(scale[i]) + f64::from(bias[i]);
                    sum += y * f64::from(weights[r * len + i]);
                }
            }
            sum
        };
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for i in 0..x.len() {
            let h = 1e-4;
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let want = (objective(&up) - objective(&down)) / (2.0 * h);
            let g = f64::from(got[i]);
            assert!(
                (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{i}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        let len = 384;
        let (x, (scale, bias)) = (rows(9, len), scale_and_bias(len));
        assert_every_isa_agrees("layer norm", |isa| {
            let mut out = vec![0.0; x.len()];
            forward_on(isa, &x, &mut out, &scale, &bias, 1e-6);
            out
        });
        let g = rows(9, len);
        assert_every_isa_agrees("layer norm backward", |isa| {
            let mut out = vec![0.0; x.len()];
            backward_on(isa, &x, &g, &mut out, &scale, 1e-6);
            out
        });
    }
}
