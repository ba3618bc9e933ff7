//! Energy-based pointing game (Wang et al., Score-CAM, 2020).

/// Share of the map's energy inside the mask: `sum(map * mask) / sum(map)`, in `[0, 1]` for a
/// non-negative map; `0` for an all-zero (empty) map.
pub fn ebpg(map: &[f32], mask: &[bool]) -> f64 {
    assert_eq!(map.len(), mask.len(), "map and mask sizes differ");
    let total: f64 = map.iter().map(|&v| f64::from(v)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let inside: f64 = map
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(&v, _)| f64::from(v))
        .fold(0.0, |a, v| a + v); // not `sum()`: an empty sum is -0.0
    inside / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_box_scores_plus_zero() {
        let e = ebpg(&[1.0, 2.0], &[false, false]);
        assert!(e == 0.0 && e.is_sign_positive(), "{e}");
    }

    #[test]
    fn hand_computed() {
        // 2x2 map, mask covers the top row: (1 + 2) / (1 + 2 + 3 + 4).
        assert_eq!(
            ebpg(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]),
            0.3
        );
        assert_eq!(ebpg(&[0.0; 4], &[true; 4]), 0.0, "empty map");
        assert_eq!(
            ebpg(&[1.0, 2.0, 0.0, 0.0], &[true, true, false, false]),
            1.0,
            "all inside"
        );
        assert_eq!(
            ebpg(&[1.0, 2.0, 0.0, 0.0], &[false, false, true, true]),
            0.0,
            "all outside"
        );
    }
}
