//! The first principal component of each path point's weighted activations, as
//! pytorch-grad-cam's `get_2d_projection` takes it (Eigen-CAM, EigenGrad-CAM, eigen-smoothing):
//! the `K` channels are the variables and the `h·w` positions the samples; each channel is
//! centred over the positions, and the map is the centred data projected on the first right
//! singular vector.
//!
//! The singular vector's sign is arbitrary (LAPACK's choice in pytorch-grad-cam's `svd`), so
//! igcam fixes it with Seg-Eigen-CAM's rule (Chung & Ying 2025, eq. 13; pytorch-grad-cam's
//! `get_2d_projection_with_sign_correction`): the projection is flipped when its most negative
//! value is larger in magnitude than its most positive one.
//!
//! The vector comes from the smaller of the two Gram matrices (`h·w × h·w` or `K × K`, in
//! `f64`) by the cyclic Jacobi eigenvalue method, a few dozen lines written here rather than a
//! linear-algebra crate for one routine: it converges to working precision on any symmetric
//! matrix, however close its eigenvalues.

use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Message, Result, Setting};
use crate::onnx::host_values;

/// Positions above which KPCA-CAM's kernel matrix (positions x positions, diagonalised by
/// Jacobi: about a second at 20 x 20) is refused.
pub const MAX_KERNEL_POSITIONS: usize = 400;

/// The signed first-component projection `[B, 1, h, w]` of `weighted` (`[B, K, h, w]`).
pub fn project(weighted: Tensor<4>) -> Result<Tensor<4>> {
    per_point(weighted, projection)
}

/// The first kernel principal component `[B, 1, h, w]` of `weighted` (`[B, K, h, w]`), as
/// pytorch-grad-cam's KPCA-CAM takes it with scikit-learn's `KernelPCA(n_components=1,
/// kernel="sigmoid")`: channels centred over the positions as for [`project`], the kernel
/// `tanh(<x_i, x_j> / K + 1)` between positions, centred (scikit-learn's `KernelCenterer`), its
/// top eigenvector scaled by the square root of its eigenvalue, signed so that its largest
/// entry in magnitude is positive (scikit-learn's `svd_flip`).
pub fn project_kernel(weighted: Tensor<4>) -> Result<Tensor<4>> {
    let [_, _, h, w] = weighted.dims();
    if h * w > MAX_KERNEL_POSITIONS {
        return Err(Error::InvalidOption(
            Message::from(format!(
                "KPCA-CAM's kernel over {h}x{w} positions is too large (at most {MAX_KERNEL_POSITIONS}); "
            ))
            .set(Setting::Layer)
            .text(" to a later, smaller layer"),
        ));
    }
    per_point(weighted, kernel_projection)
}

/// `project` applied to each point's `channels × positions` values.
fn per_point(
    weighted: Tensor<4>,
    project: fn(&[f32], usize, usize) -> Vec<f32>,
) -> Result<Tensor<4>> {
    let [points, channels, h, w] = weighted.dims();
    let device = weighted.device();
    let values = host_values(weighted)?;
    let plane = channels * h * w;
    let mut maps = Vec::with_capacity(points * h * w);
    for point in 0..points {
        maps.extend(project(&values[point * plane..][..plane], channels, h * w));
    }
    Ok(Tensor::from_data(
        TensorData::new(maps, [points, 1, h, w]),
        &device,
    ))
}

/// One point's kernel projection (see [`project_kernel`]).
fn kernel_projection(values: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let mut kernel = position_gram(&centred(values, positions), positions);
    let gamma = 1.0 / channels as f64;
    kernel
        .iter_mut()
        .for_each(|v| *v = (gamma * *v + 1.0).tanh());
    // K - 1K - K1 + 1K1: every entry minus its row's and column's means plus the overall mean
    // (the kernel is symmetric, so row and column means agree).
    let n = positions as f64;
    let means: Vec<f64> = kernel
        .chunks_exact(positions)
        .map(|r| r.iter().sum::<f64>() / n)
        .collect();
    let all = means.iter().sum::<f64>() / n;
    for (i, r) in kernel.chunks_exact_mut(positions).enumerate() {
        for (j, v) in r.iter_mut().enumerate() {
            *v += all - means[i] - means[j];
        }
    }
    let (value, vector) = top_eigenpair(kernel, positions);
    let largest = vector
        .iter()
        .copied()
        .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
    let sign = if largest < 0.0 { -1.0 } else { 1.0 };
    let s = value.max(0.0).sqrt();
    vector.iter().map(|v| (sign * s * v) as f32).collect()
}

/// The projection of one point's `channels × positions` values (channel-major) on their first
/// principal direction, sign-corrected.
pub fn projection(values: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let centred = centred(values, positions);
    let mut projected = vec![0.0f64; positions];
    if positions <= channels {
        // X Xᵀ = U S² Uᵀ, and X v₁ = s₁ u₁.
        let (value, vector) = top_eigenpair_psd(position_gram(&centred, positions), positions);
        let s = value.max(0.0).sqrt();
        for (p, u) in projected.iter_mut().zip(vector) {
            *p = s * u;
        }
    } else {
        // Xᵀ X = V S² Vᵀ, and the projection is X v₁.
        let row = |k: usize| &centred[k * positions..][..positions];
        let mut gram = vec![0.0f64; channels * channels];
        for i in 0..channels {
            for j in i..channels {
                let v: f64 = row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum();
                gram[i * channels + j] = v;
                gram[j * channels + i] = v;
            }
        }
        let (_, vector) = top_eigenpair_psd(gram, channels);
        for (k, v) in vector.iter().enumerate() {
            for (out, x) in projected.iter_mut().zip(row(k)) {
                *out += x * v;
            }
        }
    }
    let max = projected.iter().copied().fold(f64::MIN, f64::max);
    let min = projected.iter().copied().fold(f64::MAX, f64::min);
    let sign = if min.abs() > max.abs() { -1.0 } else { 1.0 };
    projected.iter().map(|&p| (sign * p) as f32).collect()
}

/// The inner products between positions, `X Xᵀ` (`positions × positions`), of channel-major
/// rows of `positions` values, one channel at a time.
fn position_gram(rows: &[f64], positions: usize) -> Vec<f64> {
    let mut gram = vec![0.0f64; positions * positions];
    for channel in rows.chunks_exact(positions) {
        for (i, &ci) in channel.iter().enumerate() {
            for (g, &cj) in gram[i * positions..][..positions].iter_mut().zip(channel) {
                *g += ci * cj;
            }
        }
    }
    gram
}

/// Each channel (`positions` values in a row) centred over the positions, in f64; NaN counts as
/// 0, as in pytorch-grad-cam.
fn centred(values: &[f32], positions: usize) -> Vec<f64> {
    values
        .chunks_exact(positions)
        .flat_map(|channel| {
            let clean = |v: f32| if v.is_nan() { 0.0 } else { v as f64 };
            let mean = channel.iter().map(|&v| clean(v)).sum::<f64>() / positions as f64;
            channel.iter().map(move |&v| clean(v) - mean)
        })
        .collect()
}

/// Power-iteration steps before [`top_eigenpair_psd`] hands over to Jacobi.
const POWER_STEPS: usize = 500;

/// [`top_eigenpair`] of a positive semi-definite matrix (a Gram matrix): by power iteration from
/// its row of largest diagonal entry, done when the residual `|A v - λ v|` is below `1e-12 λ`
/// (the vector is then off by that over the gap to the next eigenvalue), and by Jacobi where
/// that takes more than [`POWER_STEPS`] steps (two nearly equal top eigenvalues).
fn top_eigenpair_psd(a: Vec<f64>, n: usize) -> (f64, Vec<f64>) {
    let start = (0..n)
        .max_by(|&i, &j| a[i * n + i].total_cmp(&a[j * n + j]))
        .unwrap_or(0);
    let mut v: Vec<f64> = a[start * n..][..n].to_vec();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return (0.0, vec![0.0; n]);
    }
    v.iter_mut().for_each(|x| *x /= norm);
    let mut w = vec![0.0; n];
    for _ in 0..POWER_STEPS {
        for (wi, row) in w.iter_mut().zip(a.chunks_exact(n)) {
            *wi = row.iter().zip(&v).map(|(r, x)| r * x).sum();
        }
        let value: f64 = w.iter().zip(&v).map(|(a, b)| a * b).sum();
        let residual = w
            .iter()
            .zip(&v)
            .map(|(wi, vi)| (wi - value * vi).powi(2))
            .sum::<f64>()
            .sqrt();
        if residual <= 1e-12 * value.abs() {
            return (value, v);
        }
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().zip(&w).for_each(|(vi, wi)| *vi = wi / norm);
    }
    top_eigenpair(a, n)
}

/// The largest eigenvalue of the symmetric `n × n` matrix `a` and a unit eigenvector of it, by
/// cyclic Jacobi rotations until the off-diagonal part vanishes against the diagonal.
fn top_eigenpair(mut a: Vec<f64>, n: usize) -> (f64, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let diagonal: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= diagonal * 1e-30 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let top = (0..n)
        .max_by(|&i, &j| a[i * n + i].total_cmp(&a[j * n + j]))
        .unwrap_or(0);
    let vector = (0..n).map(|k| v[k * n + top]).collect();
    (a[top * n + top], vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_agrees_with_jacobi_and_hands_over_on_a_tie() {
        // A Gram matrix with a clear gap: both methods, the same pair (up to sign).
        let x = [1.0, 2.0, 0.5, -1.0, 0.3, 2.0, 1.5, -0.7, 0.2];
        let gram: Vec<f64> = (0..3)
            .flat_map(|i| (0..3).map(move |j| (0..3).map(|k| x[i * 3 + k] * x[j * 3 + k]).sum()))
            .collect();
        let (pv, pvec) = top_eigenpair_psd(gram.clone(), 3);
        let (jv, jvec) = top_eigenpair(gram, 3);
        assert!((pv - jv).abs() < 1e-10 * jv, "{pv} {jv}");
        let dot: f64 = pvec.iter().zip(&jvec).map(|(a, b)| a * b).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-10, "{pvec:?} {jvec:?}");
        // Two equal top eigenvalues: power iteration cannot settle, Jacobi answers.
        let (value, _) = top_eigenpair_psd(vec![2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0], 3);
        assert!((value - 2.0).abs() < 1e-12);
        assert_eq!(top_eigenpair_psd(vec![0.0; 4], 2), (0.0, vec![0.0, 0.0]));
    }

    #[test]
    fn jacobi_finds_the_top_eigenpair_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, the top one along (1, 1) / sqrt(2).
        let (value, vector) = top_eigenpair(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((value - 3.0).abs() < 1e-12, "{value}");
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vector[0].abs() - h).abs() < 1e-12 && (vector[1].abs() - h).abs() < 1e-12);
        assert_eq!(vector[0].signum(), vector[1].signum());
    }

    #[test]
    fn rank_one_data_projects_onto_its_pattern_with_the_salient_side_positive() {
        // Channels that are multiples of one centred pattern (plus offsets, which centring
        // removes): the projection is the pattern times the multiples' norm, its
        // larger-magnitude end positive. Two channels take the K x K route, five the
        // positions' Gram matrix.
        let pattern = [-1.0f32, -1.0, 3.0, -1.0];
        for multiples in [vec![2.0f32, -1.0], vec![2.0, -1.0, 1.0, 0.5, 3.0]] {
            let values: Vec<f32> = multiples
                .iter()
                .flat_map(|&c| pattern.iter().map(move |&p| c * p + 5.0))
                .collect();
            let got = projection(&values, multiples.len(), 4);
            let norm = multiples.iter().map(|c| c * c).sum::<f32>().sqrt();
            for (g, p) in got.iter().zip(pattern) {
                assert!((g - norm * p).abs() < 1e-5, "{got:?}");
            }
        }
    }
}
