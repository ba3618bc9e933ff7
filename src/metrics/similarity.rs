//! How alike two maps are, as Quantus 0.6's randomisation metrics measure it on flattened maps:
//! Spearman's rank correlation (`scipy.stats.spearmanr`) and SSIM (`skimage.metrics.
//! structural_similarity` with Quantus's `data_range`, on the row-major flattened map, so its
//! window is 7 consecutive values).

use super::perturbation::pearson;
use super::stats::average_ranks;

/// Spearman's rank correlation of `a` and `b` (average ranks for ties): the Pearson correlation
/// of their ranks. NaN when either is constant, as scipy returns.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let wide = |m: &[f32]| m.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let (ra, _) = average_ranks(&wide(a));
    let (rb, _) = average_ranks(&wide(b));
    pearson(&ra, &rb)
}

/// SSIM's window (skimage's default without Gaussian weights).
const WINDOW: usize = 7;

/// The mean of each window of `WINDOW` values centred on each value, the edges mirrored
/// (`scipy.ndimage.uniform_filter`, mode `reflect`: `c b a | a b c`).
fn window_means(x: &[f64]) -> Vec<f64> {
    let n = x.len() as isize;
    let half = (WINDOW / 2) as isize;
    let at = |i: isize| {
        let mut i = i;
        // Mirrored about the edge, repeatedly for a sequence shorter than the window.
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return x[i as usize];
            }
        }
    };
    (0..n)
        .map(|i| (i - half..=i + half).map(at).sum::<f64>() / WINDOW as f64)
        .collect()
}

/// Structural similarity of `a` and `b` flattened (Wang et al., 2004), as Quantus's `ssim`
/// calls skimage: a 7-value uniform window, sample covariances, `K1 = 0.01`, `K2 = 0.03`, the
/// data range `max - min` over both maps, and the mean over the windows that lie inside.
/// NaN for maps shorter than the window (skimage refuses them).
pub fn ssim(a: &[f32], b: &[f32]) -> f64 {
    if a.len() < WINDOW || a.len() != b.len() {
        return f64::NAN;
    }
    let x: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let (lo, hi) = x
        .iter()
        .chain(&y)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let range = (hi - lo).abs();
    let product = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
    let (ux, uy) = (window_means(&x), window_means(&y));
    let uxx = window_means(&product(&x, &x));
    let uyy = window_means(&product(&y, &y));
    let uxy = window_means(&product(&x, &y));
    let cov = WINDOW as f64 / (WINDOW - 1) as f64;
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let pad = (WINDOW - 1) / 2;
    let inside = pad..x.len() - pad;
    let count = inside.len() as f64;
    inside
        .map(|i| {
            let vx = cov * (uxx[i] - ux[i] * ux[i]);
            let vy = cov * (uyy[i] - uy[i] * uy[i]);
            let vxy = cov * (uxy[i] - ux[i] * uy[i]);
            (2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2)
                / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
        })
        .sum::<f64>()
        / count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_and_ssim_of_known_pairs() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let reversed: Vec<f32> = a.iter().rev().copied().collect();
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-12);
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505139.
        let s = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((s - 0.948_683_298_050_513_9).abs() < 1e-12, "{s}");
        assert!(spearman(&[1.0; 4], &[1.0, 2.0, 3.0, 4.0]).is_nan());
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        assert!(ssim(&a[..6], &a[..6]).is_nan());
        // skimage.metrics.structural_similarity(np.arange(1., 9), np.arange(8., 0, -1),
        // data_range=7) = -0.9664364884041446.
        let s = ssim(&a, &reversed);
        assert!((s + 0.966_436_488_404_144_6).abs() < 1e-9, "{s}");
    }
}
