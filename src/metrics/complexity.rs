//! How concentrated a map is: Sparseness (Chalasani et al., 2020) and Complexity (Bhatt et al.,
//! 2020), as Quantus 0.6 computes them (`abs=True`, normalised by the largest magnitude).

/// `|map| / max |map|` in f64 (an all-zero map stays zero).
fn magnitudes(map: &[f32]) -> Vec<f64> {
    let a: Vec<f64> = map.iter().map(|&v| f64::from(v).abs()).collect();
    let max = a.iter().copied().fold(0.0, f64::max);
    if max > 0.0 {
        a.iter().map(|v| v / max).collect()
    } else {
        a
    }
}

/// Gini index of the map's magnitudes (higher is sparser, in `[0, 1)`): with the values
/// `a_1 <= ... <= a_n` (each plus `1e-7`, as Quantus adds), `sum((2k - n - 1) a_k) / (n sum a)`.
pub fn sparseness(map: &[f32]) -> f64 {
    let mut a: Vec<f64> = magnitudes(map).iter().map(|v| v + 1e-7).collect();
    a.sort_by(f64::total_cmp);
    let n = a.len() as f64;
    let weighted: f64 = a
        .iter()
        .enumerate()
        .map(|(k, v)| (2.0 * (k + 1) as f64 - n - 1.0) * v)
        .sum();
    weighted / (n * a.iter().sum::<f64>())
}

/// Entropy of the map's magnitudes taken as a distribution (lower is simpler):
/// `-sum(p ln(p + 1e-12))` with `p = |a| / sum |a|`. NaN for an all-zero map, as in Quantus.
pub fn complexity(map: &[f32]) -> f64 {
    let a = magnitudes(map);
    let total: f64 = a.iter().sum();
    -a.iter()
        .map(|v| {
            let p = v / total;
            p * (p + 1e-12).ln()
        })
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // One hot of four: p = (0, 0, 0, 1) -> entropy 0; a flat map -> ln 4.
        assert!(complexity(&[0.0, 0.0, 0.0, 2.0]).abs() < 1e-11);
        assert!((complexity(&[3.0; 4]) - 4f64.ln()).abs() < 1e-11);
        assert!(complexity(&[0.0; 4]).is_nan());
        // Flat: Gini 0; one hot of four: (2*4 - 5) * 1 / (4 * 1) = 0.75 (up to the 1e-7).
        assert!(sparseness(&[0.5; 4]).abs() < 1e-12);
        assert!((sparseness(&[0.0, 0.0, 0.0, 2.0]) - 0.75).abs() < 1e-6);
        // Sign and scale do not matter.
        assert_eq!(sparseness(&[1.0, -3.0, 2.0]), sparseness(&[2.0, 6.0, 4.0]));
    }
}
