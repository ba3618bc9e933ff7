//! Top-K Intersection (Theiner et al., 2021): the share of the map's `k` highest pixels that
//! fall inside the ground-truth mask (Quantus 0.6's `TopKIntersection`, `k = 1000` there).

use super::pixels::ranked_pixels;

/// The share of the `k` highest pixels of `map` (ties: lower index first) inside `mask`;
/// `None` when the mask is empty. `k` larger than the map counts every pixel.
pub fn top_k_intersection(map: &[f32], mask: &[bool], k: usize) -> Option<f64> {
    assert_eq!(map.len(), mask.len(), "map and mask sizes differ");
    if k == 0 || !mask.contains(&true) {
        return None;
    }
    let top = ranked_pixels(map).into_iter().take(k);
    let k = k.min(map.len());
    Some(top.filter(|&i| mask[i]).count() as f64 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let map = [0.9, 0.1, 0.8, 0.3];
        let mask = [true, false, false, true];
        assert_eq!(top_k_intersection(&map, &mask, 1), Some(1.0));
        assert_eq!(top_k_intersection(&map, &mask, 2), Some(0.5));
        assert_eq!(top_k_intersection(&map, &mask, 3), Some(2.0 / 3.0));
        assert_eq!(
            top_k_intersection(&map, &mask, 9),
            Some(0.5),
            "k past the map"
        );
        assert_eq!(top_k_intersection(&map, &[false; 4], 2), None);
    }
}
