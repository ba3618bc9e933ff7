//! Deletion and Insertion (Petsiuk et al., RISE, 2018): the class score while the most
//! important pixels are removed (to black) or added (to a blurred copy), a fixed fraction of
//! pixels per step; the metric is the area under that curve.

use super::pixels::ranked_pixels;

/// Pixel order for both games: most important first.
pub fn deletion_order(map: &[f32]) -> Vec<usize> {
    ranked_pixels(map)
}

/// Area under a curve sampled at evenly spaced fractions `0, 1/n, ..., 1` (trapezoid rule).
pub fn auc(scores: &[f64]) -> f64 {
    match scores.len() {
        0 => 0.0,
        1 => scores[0],
        n => {
            let h = 1.0 / (n - 1) as f64;
            scores.windows(2).map(|w| (w[0] + w[1]) * 0.5 * h).sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(auc(&[1.0, 0.0]), 0.5);
        assert_eq!(auc(&[1.0, 1.0, 1.0]), 1.0);
        assert_eq!(auc(&[0.0, 1.0, 0.0]), 0.5);
        assert_eq!(deletion_order(&[0.2, 0.9, 0.2]), [1, 0, 2]);
    }
}
