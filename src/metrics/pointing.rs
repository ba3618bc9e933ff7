//! Pointing game (Zhang et al., 2016), TorchRay's protocol: a hit when the map's maximum lies
//! within `tolerance` pixels of the class mask; accuracy is averaged per class.

use std::collections::BTreeMap;

/// Whether the map's maximum (first one on ties) is within `tolerance` pixels (Euclidean) of a
/// mask pixel. `None` for an empty mask.
pub fn pointing_hit(map: &[f32], mask: &[bool], width: usize, tolerance: f64) -> Option<bool> {
    assert_eq!(map.len(), mask.len(), "map and mask sizes differ");
    if !mask.iter().any(|m| *m) {
        return None;
    }
    let best = super::pixels::ranked_pixels(map)[0];
    let (by, bx) = ((best / width) as f64, (best % width) as f64);
    let t2 = tolerance * tolerance;
    Some(mask.iter().enumerate().filter(|(_, m)| **m).any(|(i, _)| {
        let (y, x) = ((i / width) as f64, (i % width) as f64);
        (y - by).powi(2) + (x - bx).powi(2) <= t2
    }))
}

/// Hits and misses per class; accuracy is the mean of the per-class hit rates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointingTally(pub BTreeMap<String, (usize, usize)>);

impl PointingTally {
    /// Records one game for `class`.
    pub fn add(&mut self, class: &str, hit: bool) {
        let e = self.0.entry(class.to_string()).or_default();
        if hit { e.0 += 1 } else { e.1 += 1 }
    }

    /// Mean over classes of `hits / (hits + misses)`; `None` with no games.
    pub fn accuracy(&self) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let sum: f64 = self
            .0
            .values()
            .map(|(h, m)| *h as f64 / (*h + *m) as f64)
            .sum();
        Some(sum / self.0.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_within_tolerance_and_class_mean() {
        // 1x5 strip, mask at x = 4, max at x = 0: distance 4.
        let map = [9.0, 0.0, 0.0, 0.0, 0.0];
        let mask = [false, false, false, false, true];
        assert_eq!(pointing_hit(&map, &mask, 5, 4.0), Some(true));
        assert_eq!(pointing_hit(&map, &mask, 5, 3.9), Some(false));
        assert_eq!(pointing_hit(&map, &[false; 5], 5, 15.0), None);
        let mut t = PointingTally::default();
        t.add("cat", true);
        t.add("cat", false);
        t.add("dog", true);
        assert_eq!(t.accuracy(), Some(0.75));
        assert_eq!(PointingTally::default().accuracy(), None);
    }
}
