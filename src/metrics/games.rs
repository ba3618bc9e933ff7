//! Quantus's perturbation games on one image, through the model in batches like Drop/Increase:
//! Pixel-Flipping (Bach et al., 2015), Region Perturbation (Samek et al., 2016) and Faithfulness
//! Correlation (Bhatt et al., 2020), each as Quantus 0.6 defines it, with igcam's black (the
//! black photo normalised with the preset) as the replacement value.

use super::faithfulness::{FaithfulnessInput, Scorer};
use super::perturbation::{feature_order, pearson, regions_morf, subset_relevance, unit_trapezoid};
use crate::error::Result;

/// Which games to play and their settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Games {
    /// Pixel-Flipping with this many channel values replaced per step.
    pub flip_step: Option<usize>,
    /// Region Perturbation with `(patch side, regions replaced)`.
    pub regions: Option<(usize, usize)>,
    /// Faithfulness Correlation with these subsets of channel values (one per run).
    pub subsets: Option<Vec<Vec<usize>>>,
}

impl Games {
    fn any(&self) -> bool {
        self.flip_step.is_some() || self.regions.is_some() || self.subsets.is_some()
    }
}

/// One explanation's scores; `None` for a game not played.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GameScores {
    /// Area under the confidence curve with unit spacing (lower is better).
    pub pixel_flipping: Option<f64>,
    /// AOPC: the mean drop of confidence over the regions replaced (higher is better).
    pub region_perturbation: Option<f64>,
    /// Pearson correlation of subset relevance and confidence drop (higher is better).
    pub faithfulness_correlation: Option<f64>,
}

impl FaithfulnessInput<'_> {
    /// Plays `games` for every `(map, target)` of this image; all edited images go through the
    /// model together, a batch at a time. Maps are `height * width`, as the other metrics read
    /// them.
    pub fn play(&self, explained: &[(&[f32], usize)], games: &Games) -> Result<Vec<GameScores>> {
        if !games.any() {
            return Ok(vec![GameScores::default(); explained.len()]);
        }
        let device = self.model.device();
        let [height, width] = self.size;
        let channels = self.image.len() / self.plane();
        let mut scorer = Scorer::new(self, device);
        let mut counts = Vec::with_capacity(explained.len());
        for &(map, target) in explained {
            let mut count = [0usize; 4];
            if games.regions.is_some() || games.subsets.is_some() {
                scorer.push(self.image, target)?;
                count[3] = 1;
            }
            if let Some(step) = games.flip_step {
                let order = feature_order(map, channels);
                let mut flipped = self.image.to_vec();
                for chunk in order.chunks(step.max(1)) {
                    for &f in chunk {
                        flipped[f] = self.black[f];
                    }
                    scorer.push(&flipped, target)?;
                    count[0] += 1;
                }
            }
            if let Some((patch, n)) = games.regions {
                let mut perturbed = self.image.to_vec();
                for region in regions_morf(map, height, width, patch).iter().take(n) {
                    for c in 0..channels {
                        for &p in region {
                            perturbed[c * self.plane() + p] = self.black[c * self.plane() + p];
                        }
                    }
                    scorer.push(&perturbed, target)?;
                    count[1] += 1;
                }
            }
            for subset in games.subsets.iter().flatten() {
                let mut perturbed = self.image.to_vec();
                for &f in subset {
                    perturbed[f] = self.black[f];
                }
                scorer.push(&perturbed, target)?;
                count[2] += 1;
            }
            counts.push(count);
        }
        let scores = scorer.finish()?;
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &scores[at..at + n];
            at += n;
            s
        };
        Ok(explained
            .iter()
            .zip(counts)
            .map(|(&(map, _), count)| {
                let original = take(count[3]).first().copied().unwrap_or(f64::NAN);
                let flips = take(count[0]);
                let regions = take(count[1]);
                let drops: Vec<f64> = take(count[2]).iter().map(|s| original - s).collect();
                GameScores {
                    pixel_flipping: games.flip_step.map(|_| unit_trapezoid(flips)),
                    region_perturbation: games.regions.map(|_| {
                        regions.iter().map(|s| original - s).sum::<f64>()
                            / regions.len().max(1) as f64
                    }),
                    faithfulness_correlation: games
                        .subsets
                        .as_ref()
                        .map(|subsets| pearson(&subset_relevance(map, subsets), &drops)),
                }
            })
            .collect())
    }
}
