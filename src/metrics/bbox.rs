//! Bbox accuracy (Schulz et al., IBA, 2020).

use super::pixels::ranked_pixels;

/// With `N` = pixels in the mask: the fraction of the map's `N` highest pixels that fall in the
/// mask (ties: lower pixel index first). `None` when the mask is empty.
pub fn bbox_accuracy(map: &[f32], mask: &[bool]) -> Option<f64> {
    assert_eq!(map.len(), mask.len(), "map and mask sizes differ");
    let n = mask.iter().filter(|m| **m).count();
    if n == 0 {
        return None;
    }
    let hits = ranked_pixels(map)
        .into_iter()
        .take(n)
        .filter(|&i| mask[i])
        .count();
    Some(hits as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // Mask has 2 pixels; the two highest values are at 3 (in) and 0 (out).
        assert_eq!(
            bbox_accuracy(&[3.0, 1.0, 0.0, 4.0], &[false, true, false, true]),
            Some(0.5)
        );
        assert_eq!(
            bbox_accuracy(&[1.0, 1.0], &[false, false]),
            None,
            "empty mask"
        );
        // Ties: an all-zero map picks the first N pixels.
        assert_eq!(
            bbox_accuracy(&[0.0; 4], &[true, true, false, false]),
            Some(1.0)
        );
        assert_eq!(
            bbox_accuracy(&[0.0; 4], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            bbox_accuracy(&[5.0, 5.0, 1.0, 1.0], &[true, true, false, false]),
            Some(1.0),
            "map inside box"
        );
    }
}
