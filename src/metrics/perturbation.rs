//! The pieces of the perturbation games Quantus 0.6 plays, as pure functions: which values each
//! game replaces in which order, and how its curve becomes a number. The model runs live in
//! [`super::games`].
//!
//! Quantus broadcasts a one-channel map to the image's channels, so its "features" are channel
//! values: feature `c * H * W + p` is channel `c` of pixel `p`, and its relevance is `map[p]`.

use super::pixels::ranked_pixels;

/// Features (channel values) in Pixel-Flipping's order: pixels by decreasing map value (ties:
/// lower index first), each pixel's channels in order.
pub fn feature_order(map: &[f32], channels: usize) -> Vec<usize> {
    let plane = map.len();
    ranked_pixels(map)
        .into_iter()
        .flat_map(|p| (0..channels).map(move |c| c * plane + p))
        .collect()
}

/// The area under a curve with unit spacing (`numpy.trapezoid(curve, dx=1)`, as Quantus's
/// `return_auc_per_sample`); a single point has none.
pub fn unit_trapezoid(curve: &[f64]) -> f64 {
    curve.windows(2).map(|w| 0.5 * (w[0] + w[1])).sum()
}

/// Region Perturbation's regions: the `patch x patch` squares of a grid laid over the image
/// padded to a multiple of `patch` (Quantus's split: the smaller half of the padding before the
/// image), each as the pixels it covers, most relevant first by the sum of `map` over them
/// (ties: earlier square first). `map` is `height * width`.
pub fn regions_morf(map: &[f32], height: usize, width: usize, patch: usize) -> Vec<Vec<usize>> {
    let patch = patch.max(1);
    let start = |dim: usize| (patch - dim % patch) % patch / 2;
    let (top, left) = (start(height), start(width));
    let (rows, cols) = (
        (height + top).div_ceil(patch),
        (width + left).div_ceil(patch),
    );
    let mut regions: Vec<(f64, Vec<usize>)> = (0..rows * cols)
        .map(|b| {
            let (by, bx) = (b / cols, b % cols);
            let ys = (by * patch).saturating_sub(top)
                ..((by + 1) * patch).saturating_sub(top).min(height);
            let xs = (bx * patch).saturating_sub(left)
                ..((bx + 1) * patch).saturating_sub(left).min(width);
            let pixels: Vec<usize> = ys
                .flat_map(|y| xs.clone().map(move |x| y * width + x))
                .collect();
            let sum = pixels.iter().map(|&p| f64::from(map[p])).sum();
            (sum, pixels)
        })
        .collect();
    regions.sort_by(|a, b| b.0.total_cmp(&a.0));
    regions.into_iter().map(|(_, pixels)| pixels).collect()
}

/// The sum of the map's relevance over each subset of features (see the module's note).
pub fn subset_relevance(map: &[f32], subsets: &[Vec<usize>]) -> Vec<f64> {
    subsets
        .iter()
        .map(|s| s.iter().map(|&f| f64::from(map[f % map.len()])).sum())
        .collect()
}

/// Pearson's correlation of two samples; NaN when either is constant or shorter than 2.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "samples of different lengths");
    let n = a.len() as f64;
    if a.len() < 2 {
        return f64::NAN;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Draws `runs` subsets of `size` distinct features out of `features` (a partial Fisher-Yates
/// shuffle per run, from igcam's documented generator), reproducibly from `seed`.
pub fn random_subsets(features: usize, size: usize, runs: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = crate::cam::random::Stream::new(seed);
    let size = size.min(features);
    let mut pool: Vec<usize> = (0..features).collect();
    (0..runs)
        .map(|_| {
            for i in 0..size {
                let j = i + rng.below(features - i);
                pool.swap(i, j);
            }
            pool[..size].to_vec()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_regions() {
        assert_eq!(feature_order(&[0.1, 0.9], 3), [1, 3, 5, 0, 2, 4]);
        // A 3x3 map in 2x2 patches: padded to 4x4 with the padding after (floor(1/2) = 0 before).
        let map = [0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let r = regions_morf(&map, 3, 3, 2);
        assert_eq!(r, vec![vec![2, 5], vec![6, 7], vec![0, 1, 3, 4], vec![8]]);
        // 6 wide in 4x4 patches: 2 of padding, 1 before (the first square covers 3 pixels).
        assert_eq!(regions_morf(&[0.0; 6], 1, 6, 4)[0], [0, 1, 2]);
        assert_eq!(unit_trapezoid(&[1.0, 0.0, 1.0]), 1.0);
        assert_eq!(unit_trapezoid(&[2.0]), 0.0);
    }

    #[test]
    fn correlation_and_subsets() {
        // Deviations (-1, 0, 1) and (-13, -1, 14)/6: 27/6 / sqrt(2 * 366/36).
        let want = 4.5 / (2.0f64 * 366.0 / 36.0).sqrt();
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - want).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-15);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        let s = random_subsets(10, 4, 3, 5);
        assert_eq!(s, random_subsets(10, 4, 3, 5), "seeded");
        for run in &s {
            let mut d = run.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 4, "distinct");
            assert!(run.iter().all(|&f| f < 10));
        }
        assert_ne!(s, random_subsets(10, 4, 3, 6));
        assert_eq!(
            subset_relevance(&[0.5, 0.25], &[vec![0, 3], vec![2]]),
            [0.75, 0.5]
        );
    }
}
