//! Max-Sensitivity (Yeh et al., 2019), as Quantus 0.6's `MaxSensitivity` computes it with its
//! defaults: the input plus uniform noise in `[-r, r)` on every value, the explanation redone
//! on each noisy copy, and the largest `||e(x) - e(x + δ)|| / ||e(x)||` (Frobenius norms of the
//! flattened maps) over the copies. Lower is better.

use crate::cam::random::{substream, uniforms};

/// The noise of copy `sample` for an input of `len` values: igcam's generator (uniform) from
/// [`substream`]`(seed, sample)`, the same for every explanation of a run.
pub fn sensitivity_noise(seed: u64, sample: usize, len: usize, radius: f32) -> Vec<f32> {
    let r = f64::from(radius);
    uniforms(substream(seed, sample), len, [-r, r])
}

/// `max_s ||map - perturbed_s|| / ||map||`, NaN values skipped (NaN when every copy is NaN, or
/// there is none; infinite for an all-zero map that changes, as Quantus divides by 0).
pub fn max_sensitivity(map: &[f32], perturbed: &[Vec<f32>]) -> f64 {
    let norm = map
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt();
    perturbed
        .iter()
        .map(|p| {
            let d = map
                .iter()
                .zip(p)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum::<f64>()
                .sqrt();
            d / norm
        })
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_relative_change_wins() {
        let map = [3.0, 4.0];
        let s = max_sensitivity(&map, &[vec![3.0, 4.0], vec![0.0, 0.0], vec![3.0, 5.0]]);
        assert_eq!(s, 1.0);
        assert!(max_sensitivity(&map, &[]).is_nan());
        let noise = sensitivity_noise(3, 1, 1000, 0.2);
        assert!(noise.iter().all(|v| (-0.2..0.2).contains(v)));
        assert_ne!(noise, sensitivity_noise(3, 0, 1000, 0.2));
    }
}
