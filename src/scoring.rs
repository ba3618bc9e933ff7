//! Every metric of the explanations of one photo, computed the one way `eval` and the Python
//! binding share: each map as the metrics read it (resized to the input, min-max scaled), the
//! localisation metrics against a class mask where there is one, and the faithfulness metrics
//! on edits of the photo normalised with the explainer's preset (the black image, and the
//! photo blurred with σ = 5 as insertion's start), pushed through the model in chunks; and
//! the metrics beyond the paper's that the options select ([`crate::metrics::table`]).

use std::collections::BTreeMap;

use image::RgbImage;

use crate::cam::CamMap;
use crate::error::{Error, Message, Result};
use crate::explainer::Explainer;
use crate::metrics::perturbation::random_subsets;
use crate::metrics::table::{MetricInfo, Reading};
use crate::metrics::{
    Confidence, Faithfulness, FaithfulnessInput, Games, Road, bbox_accuracy, ebpg, pointing_hit,
};
use crate::preprocess::{self, Baseline};
use crate::reexplain::{Redo, RedoOptions, Scored, as_read, redo};

/// How the metrics are computed.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreOptions {
    /// How a class's confidence is read from the logits (every metric that runs the model).
    pub confidence: Confidence,
    /// Steps of the Deletion and Insertion curves (and of Pixel-Flipping by default).
    pub curve_steps: usize,
    /// The pointing game's tolerance, in pixels.
    pub tolerance: f64,
    /// The metrics beyond the paper's set to compute ([`crate::metrics::table::select`]).
    pub extra: Vec<&'static MetricInfo>,
    /// Top-K Intersection's `k`, in pixels.
    pub top_k: usize,
    /// Channel values Pixel-Flipping replaces per step; `None`: a `curve_steps`-th of them.
    pub flip_step: Option<usize>,
    /// Region Perturbation's square side, in pixels.
    pub region_patch: usize,
    /// Region Perturbation's number of regions replaced.
    pub regions: usize,
    /// Faithfulness Correlation's runs.
    pub fc_runs: usize,
    /// Faithfulness Correlation's channel values per subset.
    pub fc_subset: usize,
    /// ROAD's percentiles.
    pub road_percentiles: Vec<f64>,
    /// ROAD's imputation noise (standard deviation).
    pub road_noise: f32,
    /// Quantus ROAD's percentages of the pixels imputed (`road_accuracy`).
    pub road_accuracy_percentages: Vec<f64>,
    /// IROF's superpixels (SLIC's `n_segments`).
    pub irof_segments: usize,
    /// Max-Sensitivity's noisy copies of the input.
    pub ms_samples: usize,
    /// Max-Sensitivity's noise radius (uniform in `±radius`, normalised units).
    pub ms_radius: f32,
    /// MPRT's layers randomised, from the top; `None`: all of them.
    pub mprt_layers: Option<usize>,
    /// Seed of Faithfulness Correlation's subsets, ROAD's and Max-Sensitivity's noise, Random
    /// Logit's classes and MPRT's weights (the same for every explanation, so methods are
    /// compared on the same perturbations).
    pub seed: u64,
}

impl Default for ScoreOptions {
    /// `eval`'s defaults: softmax, 16 curve steps, 15 pixels, the paper's metrics; Quantus's
    /// defaults for the others (k = 1000, 8-pixel regions, 100 regions, 100 runs of 224 values),
    /// pytorch-grad-cam's for ROAD (percentiles 10 to 90, noise 0.01), Quantus's for its ROAD
    /// (1, 3, ..., 99 %); IROF on skimage's 100
    /// SLIC segments; Max-Sensitivity with 10
    /// noisy copies (Quantus's 200 cost 200 explanations per map) of radius 0.2; MPRT over
    /// every layer.
    fn default() -> Self {
        Self {
            confidence: Confidence::Softmax,
            curve_steps: 16,
            tolerance: 15.0,
            extra: Vec::new(),
            top_k: 1000,
            flip_step: None,
            region_patch: 8,
            regions: 100,
            fc_runs: 100,
            fc_subset: 224,
            road_percentiles: crate::metrics::road::PERCENTILES.to_vec(),
            road_noise: 0.01,
            road_accuracy_percentages: (1..100).step_by(2).map(f64::from).collect(),
            irof_segments: 100,
            ms_samples: 10,
            ms_radius: 0.2,
            mprt_layers: None,
            seed: 0,
        }
    }
}

impl ScoreOptions {
    fn wants(&self, name: &str) -> bool {
        self.extra.iter().any(|m| m.name == name)
    }

    /// Pixel-Flipping's step for an image of `features` channel values (at least 1).
    fn flip_step_for(&self, features: usize) -> usize {
        self.flip_step
            .unwrap_or(features.div_ceil(self.curve_steps.max(1)))
            .max(1)
    }

    /// The perturbation games these options play on an image of `channels x size`.
    pub fn games(&self, channels: usize, size: [usize; 2]) -> Games {
        let features = channels * size[0] * size[1];
        Games {
            flip_step: self
                .wants("pixel_flipping")
                .then(|| self.flip_step_for(features)),
            regions: self
                .wants("region_perturbation")
                .then_some((self.region_patch, self.regions)),
            subsets: self
                .wants("faithfulness_correlation")
                .then(|| random_subsets(features, self.fc_subset, self.fc_runs, self.seed)),
            road: self.road_games().map(|(morf, lerf, accuracy)| Road {
                percentiles: self.road_percentiles.clone(),
                morf,
                lerf,
                accuracy: if accuracy {
                    self.road_accuracy_percentages.clone()
                } else {
                    Vec::new()
                },
                noise: self.road_noise,
                seed: self.seed,
            }),
            irof: self.wants("irof").then_some(self.irof_segments),
        }
    }

    /// What the selected metrics explain again.
    pub fn redo_options(&self) -> RedoOptions {
        RedoOptions {
            ms_samples: if self.wants("max_sensitivity") {
                self.ms_samples
            } else {
                0
            },
            ms_radius: self.ms_radius,
            random_logit: self.wants("random_logit"),
            mprt_layers: (self.wants("mprt") || self.wants("mprt_ssim"))
                .then_some(self.mprt_layers),
            seed: self.seed,
        }
    }

    /// Which ROAD games the selected metrics need: (MoRF, LeRF, Quantus's), or `None`.
    fn road_games(&self) -> Option<(bool, bool, bool)> {
        let combined = self.wants("road_combined");
        let morf = combined || self.wants("road_morf");
        let lerf = combined || self.wants("road_lerf");
        let accuracy = self.wants("road_accuracy");
        (morf || lerf || accuracy).then_some((morf, lerf, accuracy))
    }

    /// Forward passes the metrics cost per explanation of an image of `channels x size`:
    /// Drop's masked image, the two curves, and the games (with the image itself once).
    pub fn forwards(&self, channels: usize, size: [usize; 2]) -> usize {
        let features = channels * size[0] * size[1];
        let patch = self.region_patch.max(1);
        let regions = (size[0].div_ceil(patch) + 1) * (size[1].div_ceil(patch) + 1);
        // Saturating: a huge setting must count as huge, not wrap to a small number.
        let mut n =
            1usize.saturating_add(2usize.saturating_mul(self.curve_steps.saturating_sub(1)));
        if self.wants("pixel_flipping") {
            n = n.saturating_add(features.div_ceil(self.flip_step_for(features)));
        }
        if self.wants("region_perturbation") {
            n = n.saturating_add(1 + self.regions.min(regions));
        }
        if self.wants("faithfulness_correlation") {
            n = n.saturating_add(self.fc_runs.saturating_add(1));
        }
        if self.wants("irof") {
            // SLIC gives at most about twice its grid's seeds.
            let seeds = crate::metrics::slic::seed_count(size, self.irof_segments);
            n = n.saturating_add(seeds.saturating_mul(2).saturating_add(1));
        }
        if let Some((morf, lerf, accuracy)) = self.road_games() {
            let per = usize::from(morf) + usize::from(lerf);
            let quantus = if accuracy {
                self.road_accuracy_percentages.len()
            } else {
                0
            };
            n = n.saturating_add(
                self.road_percentiles
                    .len()
                    .saturating_mul(per)
                    .saturating_add(quantus)
                    .saturating_add(1),
            );
        }
        n
    }

    /// The settings as one line, for telling runs apart: a resumed run and merged shards
    /// must have been scored alike.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.extra.iter().map(|m| m.name).collect();
        format!(
            "score={:?} curve_steps={} tolerance={} metrics=[{}] top_k={} flip_step={:?} region_patch={} regions={} fc_runs={} fc_subset={} road_percentiles={:?} road_noise={} road_accuracy_percentages={:?} irof_segments={} ms_samples={} ms_radius={} mprt_layers={:?} seed={}",
            self.confidence,
            self.curve_steps,
            self.tolerance,
            names.join(","),
            self.top_k,
            self.flip_step,
            self.region_patch,
            self.regions,
            self.fc_runs,
            self.fc_subset,
            self.road_percentiles,
            self.road_noise,
            self.road_accuracy_percentages,
            self.irof_segments,
            self.ms_samples,
            self.ms_radius,
            self.mprt_layers,
            self.seed
        )
    }

    /// Channel values Faithfulness Correlation's subsets hold at once for an image of
    /// `features` values (0 when it is not asked for).
    pub fn subset_values(&self, features: usize) -> usize {
        if self.wants("faithfulness_correlation") {
            self.fc_runs.saturating_mul(self.fc_subset.min(features))
        } else {
            0
        }
    }
}

/// The most channel values Faithfulness Correlation's subsets may hold at once (400 MB):
/// `--fc-runs` times `--fc-subset` (at most the image's values).
pub const MAX_SUBSET_VALUES: usize = 50_000_000;

/// One explanation to score: its map, its class, and the class's mask (`H * W` at the model's
/// input, `true` inside the object) when one is known.
pub struct ToScore<'a> {
    /// The raw map.
    pub map: &'a CamMap,
    /// The method's label ([`crate::explainer::Explanation::label`]), which the metrics that
    /// explain again redo.
    pub label: &'a str,
    /// The explained class.
    pub target: usize,
    /// The class's ground truth at the model's input.
    pub mask: Option<&'a [bool]>,
}

/// The metrics of one explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// The map the metrics read: at the input's resolution, min-max scaled to [0, 1].
    pub map: Vec<f32>,
    /// Drop/Increase and the Deletion/Insertion AUCs.
    pub faithfulness: Faithfulness,
    /// Energy-based pointing game (with a mask).
    pub ebpg: Option<f64>,
    /// Bbox accuracy (with a mask that is not empty).
    pub bbox: Option<f64>,
    /// Pointing-game hit (with a mask that is not empty).
    pub pointing: Option<bool>,
    /// The selected metrics beyond the paper's, by name (NaN where one cannot be computed,
    /// e.g. a localisation metric without a mask).
    pub extra: BTreeMap<&'static str, f64>,
    /// MPRT's similarities (`mprt_spearman`, `mprt_ssim`), when asked: 1 for the original
    /// model, then one per layer randomised, top down; and ROAD's per percentile
    /// (`road_morf`, `road_lerf`, `road_accuracy`).
    pub curves: BTreeMap<&'static str, Vec<f64>>,
}

/// Refuses a model the metrics cannot score: a segmenter (they read a classifier's class
/// confidence).
pub fn check_model(explainer: &Explainer) -> Result<()> {
    let kind = if explainer.model().is_segmenter() {
        "segmenter"
    } else if explainer.model().detector().is_some() {
        "detector"
    } else {
        return Ok(());
    };
    Err(Error::InvalidOption(Message::from(format!(
        "the metrics score a classifier's class confidence; this model is a {kind}, whose maps they do not score yet"
    ))))
}

/// Scores every explanation of `photo` (the prepared photo, at the model's input size) at once;
/// the metrics that explain again need `again` (the request, and the model's file for MPRT).
pub fn score(
    explainer: &Explainer,
    photo: &RgbImage,
    explained: &[ToScore],
    options: &ScoreOptions,
    again: Option<&Redo>,
) -> Result<Vec<Scores>> {
    let size = explainer.model().input_size();
    let pixels = size[0] * size[1];
    check_model(explainer)?;
    if again.is_none() && options.redo_options().any() {
        return Err(Error::InvalidOption(Message::from(
            "max_sensitivity, random_logit and mprt explain again and need the request that made the maps: score the results of `explain`, or run `igcam-wgpu eval`",
        )));
    }
    if let Some(mask) = explained
        .iter()
        .filter_map(|e| e.mask)
        .find(|m| m.len() != pixels)
    {
        return Err(Error::InvalidOption(Message::from(format!(
            "a mask holds {} values but the model's input has {}x{} = {pixels} pixels",
            mask.len(),
            size[0],
            size[1]
        ))));
    }
    let preset = explainer.options().preset;
    let image = preprocess::normalise(photo, preset);
    let blurred = preprocess::normalise(&image::imageops::blur(photo, 5.0), preset);
    let black = preprocess::baseline(Baseline::Black, preset, size);
    let faith = FaithfulnessInput {
        model: explainer.model(),
        image: &image,
        black: &black,
        blurred: &blurred,
        size,
        batch: explainer.batch(),
        confidence: options.confidence,
    };
    let maps: Vec<Vec<f32>> = explained.iter().map(|e| as_read(e.map, size)).collect();
    let jobs: Vec<(&[f32], usize)> = maps
        .iter()
        .zip(explained)
        .map(|(m, e)| (m.as_slice(), e.target))
        .collect();
    let faithfulness = faith.score_all(&jobs, options.curve_steps)?;
    let games = options.games(image.len() / pixels, size);
    let played = faith.play(&jobs, &games)?;
    let redo_options = options.redo_options();
    let redone = match again {
        Some(again) => {
            let scored: Vec<Scored> = maps
                .iter()
                .zip(explained)
                .map(|(m, e)| Scored {
                    label: e.label,
                    target: e.target,
                    map: m,
                })
                .collect();
            redo(explainer, &image, &scored, &redo_options, again)?
        }
        None => vec![Default::default(); maps.len()],
    };
    Ok(maps
        .into_iter()
        .zip(explained)
        .zip(faithfulness.into_iter().zip(played))
        .zip(redone)
        .map(|(((map, e), (faithfulness, played)), redone)| {
            let reading = Reading {
                map: &map,
                mask: e.mask,
                played: &played,
                top_k: options.top_k,
                redone: &redone,
            };
            let extra = options
                .extra
                .iter()
                .map(|m| (m.name, (m.read)(&reading).unwrap_or(f64::NAN)))
                .collect();
            Scores {
                ebpg: e.mask.map(|mask| ebpg(&map, mask)),
                bbox: e.mask.and_then(|mask| bbox_accuracy(&map, mask)),
                pointing: e
                    .mask
                    .and_then(|mask| pointing_hit(&map, mask, size[1], options.tolerance)),
                map,
                faithfulness,
                extra,
                // The original map's similarity to itself (1) first, as Adebayo et al. plot.
                curves: [
                    ("mprt_spearman", redone.mprt_spearman),
                    ("mprt_ssim", redone.mprt_ssim),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k, std::iter::once(1.0).chain(v?).collect())))
                .chain(played.curves.iter().cloned())
                .collect(),
            }
        })
        .collect())
}
