//! Semantic segmentation. A segmenter's output `[N, K, H, W]` scores every class at every
//! pixel of its plane; a class's region is where it scores highest (the first class on ties,
//! as `argmax` does), and explaining class `c` takes the gradient of its scores summed over
//! that region: pytorch-grad-cam's `SemanticSegmentationTarget`, the mask being the region
//! at the photo, kept for every path point and re-run.

use std::sync::Arc;

use crate::labels::Prediction;
use crate::onnx::objective::Objective;

/// The regions of one image's segmentation: the best class at every pixel.
pub struct Regions {
    classes: usize,
    /// The best class of each pixel, row-major over the output plane.
    best: Vec<usize>,
}

impl Regions {
    /// The regions of one image's output `scores` (`classes` planes of `plane` pixels,
    /// class-major).
    pub fn of(scores: &[f32], classes: usize, plane: usize) -> Self {
        let best = (0..plane)
            .map(|p| {
                (0..classes).fold(0, |best, c| {
                    if scores[c * plane + p] > scores[best * plane + p] {
                        c
                    } else {
                        best
                    }
                })
            })
            .collect();
        Self { classes, best }
    }

    /// The best class of each pixel of the output plane, row-major.
    pub fn best(&self) -> &[usize] {
        &self.best
    }

    /// Pixels of the output plane.
    pub fn plane(&self) -> usize {
        self.best.len()
    }

    /// Each class's pixel count.
    pub fn pixels(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &c in &self.best {
            counts[c] += 1;
        }
        counts
    }

    /// The classes present (at least one pixel), the largest region first (lower index on
    /// ties).
    pub fn present(&self) -> Vec<usize> {
        let counts = self.pixels();
        let mut present: Vec<usize> = (0..self.classes).filter(|&c| counts[c] > 0).collect();
        present.sort_by_key(|&c| std::cmp::Reverse(counts[c]));
        present
    }

    /// `class`'s region as pixel weights (1 inside, 0 outside).
    pub fn mask(&self, class: usize) -> Vec<f32> {
        self.best
            .iter()
            .map(|&c| if c == class { 1.0 } else { 0.0 })
            .collect()
    }

    /// The objective explaining `class`: its scores summed over its region.
    pub fn objective(&self, class: usize) -> Objective {
        Objective::Region {
            class,
            plane: self.plane(),
            mask: Arc::from(self.mask(class)),
        }
    }

    /// Every class, the largest region first: `logit` is the class's mean score over its
    /// region (0 where it has none), `prob` its share of the pixels.
    pub fn ranked(&self, scores: &[f32], labels: &[String]) -> Vec<Prediction> {
        let counts = self.pixels();
        let plane = self.plane();
        let mut out: Vec<Prediction> = (0..self.classes)
            .map(|c| {
                let inside: f32 = self
                    .best
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == c)
                    .map(|(p, _)| scores[c * plane + p])
                    .sum();
                Prediction {
                    index: c,
                    label: crate::labels::label_of(labels, c),
                    logit: if counts[c] > 0 {
                        inside / counts[c] as f32
                    } else {
                        0.0
                    },
                    prob: counts[c] as f32 / plane.max(1) as f32,
                }
            })
            .collect();
        out.sort_by(|a, b| b.prob.total_cmp(&a.prob).then(a.index.cmp(&b.index)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_follow_the_argmax_with_the_first_class_on_ties() {
        // Two classes over four pixels: class 1 wins pixels 1 and 2, pixel 3 is a tie (class 0).
        let scores = [1.0, 0.0, 0.0, 2.0, 0.5, 3.0, 1.0, 2.0];
        let r = Regions::of(&scores, 2, 4);
        assert_eq!(r.pixels(), [2, 2]);
        assert_eq!(r.mask(1), [0.0, 1.0, 1.0, 0.0]);
        assert_eq!(r.present(), [0, 1]);
        let ranked = r.ranked(&scores, &["bg".into(), "cat".into()]);
        assert_eq!(
            (ranked[0].index, ranked[0].logit, ranked[0].prob),
            (0, 1.5, 0.5)
        );
        assert_eq!((ranked[1].label.as_str(), ranked[1].logit), ("cat", 2.0));
        let Objective::Region { class, plane, mask } = r.objective(1) else {
            panic!("a region objective");
        };
        assert_eq!((class, plane, &mask[..]), (1, 4, &[0.0, 1.0, 1.0, 0.0][..]));
    }
}
