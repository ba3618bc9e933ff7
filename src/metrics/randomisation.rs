//! Quantus 0.6's randomisation family: Random Logit (Sixt et al., 2020) compares the map of the
//! explained class with the map of a random other class by SSIM; MPRT (Adebayo et al., 2018)
//! compares it with the maps of the model whose layers are randomised one by one from the top
//! (cascading, [`crate::onnx::randomise`]), by Spearman's rank correlation and SSIM, per layer.
//! Lower similarity is better: an explanation should depend on the class and on the weights.

use super::similarity::{spearman, ssim};
use crate::cam::random::Stream;

/// Random Logit's other class for `target` among `classes` (at least 2): uniform over the
/// others, drawn by igcam's generator from `seed + target`, so every method of a run explains
/// the same other class for a given target.
pub fn off_class(seed: u64, target: usize, classes: usize) -> usize {
    let k = Stream::new(seed.wrapping_add(target as u64)).below(classes - 1);
    if k >= target { k + 1 } else { k }
}

/// MPRT's per-layer similarities of `map` to the maps of the cascade (`randomised[l]`: the top
/// `l + 1` layers randomised): Spearman's correlations and SSIMs.
pub fn mprt(map: &[f32], randomised: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>) {
    randomised
        .iter()
        .map(|r| (spearman(map, r), ssim(map, r)))
        .unzip()
}

/// MPRT's value per explanation: the mean similarity over the randomised layers, a layer whose
/// map went constant (NaN: no rank order to correlate) counting 0; NaN without layers.
/// Quantus 0.6's `return_average_correlation` also averages in the original model's
/// similarity and turns NaN with any constant map (see the README).
pub fn mean_over_layers(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .sum::<f64>()
        / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_class_is_never_the_target_and_covers_the_rest() {
        let mut seen = [false; 5];
        for seed in 0..200 {
            let k = off_class(seed, 2, 5);
            assert_ne!(k, 2);
            seen[k] = true;
        }
        assert_eq!(seen, [true, true, false, true, true]);
        assert_eq!(off_class(9, 1, 2), 0);
        let map = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.9, 0.1];
        let (rho, s) = mprt(&map, &[map.to_vec()]);
        assert!((rho[0] - 1.0).abs() < 1e-12 && (s[0] - 1.0).abs() < 1e-12);
        assert_eq!(mean_over_layers(&[1.0, f64::NAN, 0.5]), 0.5);
        assert!(mean_over_layers(&[]).is_nan());
    }
}
