//! The perturbation games on one image, through the model in batches like Drop/Increase:
//! Pixel-Flipping (Bach et al., 2015), Region Perturbation (Samek et al., 2016) and Faithfulness
//! Correlation (Bhatt et al., 2020) and IROF (Rieger and Hansen, 2020, on [`super::slic`]
//! superpixels), each as Quantus 0.6 defines it, with igcam's black (the black photo normalised
//! with the preset) as the replacement value; and ROAD as pytorch-grad-cam defines it (noisy
//! linear imputation, [`super::road`]).

use super::faithfulness::{FaithfulnessInput, Scorer};
use super::perturbation::{feature_order, pearson, regions_morf, subset_relevance, unit_trapezoid};
use super::pixels::ranked_pixels;
use super::road::{impute, kept};
use super::slic::slic;
use crate::cam::random::standard_normals;
use crate::error::Result;
use crate::kernels::par::par_chunks;

/// ROAD's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Road {
    /// The percentiles the score is averaged over.
    pub percentiles: Vec<f64>,
    /// Play the most-relevant-first game.
    pub morf: bool,
    /// Play the least-relevant-first game.
    pub lerf: bool,
    /// Quantus's game: at each of these percentages `p`, the `floor(H W p / 100)` most
    /// relevant pixels imputed, and whether the class is still the top one (empty: not played).
    pub accuracy: Vec<f64>,
    /// The imputation noise's standard deviation (pytorch-grad-cam: 0.01).
    pub noise: f32,
    /// The noise's seed: each imputation of `n` pixels adds the first `channels * n` standard
    /// normal values of igcam's generator from this seed.
    pub seed: u64,
}

/// Which games to play and their settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Games {
    /// Pixel-Flipping with this many channel values replaced per step.
    pub flip_step: Option<usize>,
    /// Region Perturbation with `(patch side, regions replaced)`.
    pub regions: Option<(usize, usize)>,
    /// Faithfulness Correlation with these subsets of channel values (one per run).
    pub subsets: Option<Vec<Vec<usize>>>,
    /// ROAD.
    pub road: Option<Road>,
    /// IROF on about this many SLIC superpixels.
    pub irof: Option<usize>,
}

impl Games {
    fn any(&self) -> bool {
        self.flip_step.is_some()
            || self.regions.is_some()
            || self.subsets.is_some()
            || self.road.is_some()
            || self.irof.is_some()
    }
}

/// Which pixels a ROAD imputation removes.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    /// pytorch-grad-cam's most relevant first: those at or above the percentile.
    Morf,
    /// pytorch-grad-cam's least relevant first.
    Lerf,
    /// Quantus's: the `floor(H W p / 100)` first of the ranking.
    Top,
}

/// Quantus ROAD's known pixels at percentage `p`: all but the first `floor(n p / 100)` of
/// `ranked` (the map's pixels by decreasing value, ties by index).
fn top_removed(ranked: &[usize], p: f64) -> Vec<bool> {
    let mut known = vec![true; ranked.len()];
    let cut = (ranked.len() as f64 * p / 100.0) as usize;
    for &i in &ranked[..cut.min(ranked.len())] {
        known[i] = false;
    }
    known
}

/// How many scores each game of one explanation pushed, in the order they are read back.
#[derive(Clone, Copy, Default)]
struct Counts {
    original: usize,
    flips: usize,
    regions: usize,
    subsets: usize,
    morf: usize,
    lerf: usize,
    accuracy: usize,
    irof: usize,
}

/// The superpixels (each one's pixels) in decreasing order of the map's mean over them (ties:
/// the lower label first), as IROF removes them.
fn segment_order(map: &[f32], members: &[Vec<usize>]) -> Vec<usize> {
    let means: Vec<f64> = members
        .iter()
        .map(|pixels| pixels.iter().map(|&p| f64::from(map[p])).sum::<f64>() / pixels.len() as f64)
        .collect();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
    order
}

/// One explanation's scores; `None` for a game not played.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GameScores {
    /// Area under the confidence curve with unit spacing (lower is better).
    pub pixel_flipping: Option<f64>,
    /// AOPC: the mean drop of confidence over the regions replaced (higher is better).
    pub region_perturbation: Option<f64>,
    /// Pearson correlation of subset relevance and confidence drop (higher is better).
    pub faithfulness_correlation: Option<f64>,
    /// ROAD, most relevant first: the mean change of confidence (lower is better).
    pub road_morf: Option<f64>,
    /// ROAD, least relevant first: the mean change of confidence (higher is better).
    pub road_lerf: Option<f64>,
    /// IROF: the area over the curve of the confidence relative to the image's (higher is
    /// better).
    pub irof: Option<f64>,
    /// ROAD as Quantus plays it: the share of its percentages at which the class is still the
    /// top one (lower is better).
    pub road_accuracy: Option<f64>,
    /// The ROAD curves, per percentile: `road_morf` and `road_lerf` (the confidence's change)
    /// and `road_accuracy` (1 or 0).
    pub curves: Vec<(&'static str, Vec<f64>)>,
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
        // The superpixels depend on the image alone: each one's pixels, found once.
        let segments = games.irof.map(|n| {
            let (labels, count) = slic(self.image, self.size, n);
            let mut members = vec![Vec::new(); count];
            for (p, &l) in labels.iter().enumerate().filter(|(_, l)| **l < count) {
                members[l].push(p);
            }
            members
        });
        for &(map, target) in explained {
            let mut count = Counts::default();
            if games.regions.is_some()
                || games.subsets.is_some()
                || games.road.is_some()
                || games.irof.is_some()
            {
                scorer.push(self.image, target)?;
                count.original = 1;
            }
            if let Some(step) = games.flip_step {
                let order = feature_order(map, channels);
                let mut flipped = self.image.to_vec();
                for chunk in order.chunks(step.max(1)) {
                    for &f in chunk {
                        flipped[f] = self.black[f];
                    }
                    scorer.push(&flipped, target)?;
                    count.flips += 1;
                }
            }
            if let Some((patch, n)) = games.regions {
                let mut perturbed = self.image.to_vec();
                for region in regions_morf(map, height, width, patch).iter().take(n) {
                    self.paste(&mut perturbed, self.black, region);
                    scorer.push(&perturbed, target)?;
                    count.regions += 1;
                }
            }
            for subset in games.subsets.iter().flatten() {
                let mut perturbed = self.image.to_vec();
                for &f in subset {
                    perturbed[f] = self.black[f];
                }
                scorer.push(&perturbed, target)?;
                count.subsets += 1;
            }
            if let Some(road) = &games.road {
                // Every imputation of this map at once, in parallel (each is a sparse solve).
                let mut jobs: Vec<(Cut, f64)> = Vec::new();
                for (cut, play) in [(Cut::Morf, road.morf), (Cut::Lerf, road.lerf)] {
                    if play {
                        jobs.extend(road.percentiles.iter().map(|&p| (cut, p)));
                    }
                }
                jobs.extend(road.accuracy.iter().map(|&p| (Cut::Top, p)));
                count.morf = if road.morf { road.percentiles.len() } else { 0 };
                count.lerf = if road.lerf { road.percentiles.len() } else { 0 };
                count.accuracy = road.accuracy.len();
                let ranked = (!road.accuracy.is_empty()).then(|| ranked_pixels(map));
                let mut imputed = vec![Vec::new(); jobs.len()];
                let (image, size) = (self.image, self.size);
                par_chunks(&mut imputed, 1, |i, slot| {
                    let (cut, p) = jobs[i];
                    let known = match (cut, &ranked) {
                        (Cut::Top, Some(ranked)) => top_removed(ranked, p),
                        (cut, _) => kept(map, p, cut == Cut::Morf),
                    };
                    let n = known.iter().filter(|k| !**k).count();
                    let noise = standard_normals(road.seed, 0, channels * n);
                    // Everything removed (a flat map): the system is singular, the score NaN.
                    slot[0] = impute(image, size, &known, &noise, road.noise)
                        .unwrap_or_else(|| vec![f32::NAN; image.len()]);
                });
                for (image, (cut, _)) in imputed.iter().zip(&jobs) {
                    if *cut == Cut::Top {
                        scorer.push_hit(image, target)?;
                    } else {
                        scorer.push(image, target)?;
                    }
                }
            }
            if let Some(members) = &segments {
                let mut perturbed = self.image.to_vec();
                for s in segment_order(map, members) {
                    self.paste(&mut perturbed, self.black, &members[s]);
                    scorer.push(&perturbed, target)?;
                    count.irof += 1;
                }
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
                let original = take(count.original).first().copied().unwrap_or(f64::NAN);
                let flips = take(count.flips);
                let regions = take(count.regions);
                let drops: Vec<f64> = take(count.subsets).iter().map(|s| original - s).collect();
                let changes =
                    |after: &[f64]| after.iter().map(|s| s - original).collect::<Vec<_>>();
                let (morf, lerf) = (changes(take(count.morf)), changes(take(count.lerf)));
                let accuracy = take(count.accuracy).to_vec();
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                let relative: Vec<f64> = take(count.irof).iter().map(|s| s / original).collect();
                let road = games.road.as_ref();
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
                    road_morf: road.filter(|r| r.morf).map(|_| mean(&morf)),
                    road_lerf: road.filter(|r| r.lerf).map(|_| mean(&lerf)),
                    road_accuracy: road
                        .filter(|r| !r.accuracy.is_empty())
                        .map(|_| mean(&accuracy)),
                    irof: games
                        .irof
                        .map(|_| relative.len() as f64 - unit_trapezoid(&relative)),
                    curves: [
                        ("road_morf", morf),
                        ("road_lerf", lerf),
                        ("road_accuracy", accuracy),
                    ]
                    .into_iter()
                    .filter(|(_, c)| !c.is_empty())
                    .collect(),
                }
            })
            .collect())
    }
}
