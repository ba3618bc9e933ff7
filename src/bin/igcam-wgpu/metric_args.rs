//! `eval`'s metric switches, one flattened group: which metrics, and each one's settings.

use anyhow::{Result, bail};
use clap::Args;
use igcam::metrics::Confidence;
use igcam::metrics::table;
use igcam::onnx::randomise::Cascade;
use igcam::scoring::{MAX_SUBSET_VALUES, ScoreOptions};

/// Default limit of forward passes per explanation.
pub const DEFAULT_MAX_FORWARDS: usize = 2000;

/// The metrics and their settings.
#[derive(Args)]
pub struct MetricArgs {
    /// Metrics besides the paper's (which are always computed): `default` (none), `all`, or
    /// names separated by commas: top_k, sparseness, complexity, pixel_flipping,
    /// region_perturbation, faithfulness_correlation, road_morf, road_lerf, road_combined,
    /// road_accuracy, irof, max_sensitivity, random_logit, mprt, mprt_ssim (see the README's
    /// metric table).
    #[arg(long, default_value = "default")]
    metrics: String,
    /// Class confidence for every metric that runs the model.
    #[arg(long, value_enum, default_value_t = Confidence::Softmax)]
    score: Confidence,
    /// Steps of the Deletion and Insertion curves (1/N of the pixels per step), and of
    /// Pixel-Flipping unless --flip-step is given.
    #[arg(long, default_value_t = 16)]
    curve_steps: usize,
    /// Pointing-game tolerance in pixels.
    #[arg(long, default_value_t = 15.0)]
    tolerance: f64,
    /// Top-K Intersection's k, in pixels.
    #[arg(long, default_value_t = 1000)]
    top_k: usize,
    /// Pixel-Flipping's channel values replaced per step (default: a --curve-steps-th of them).
    #[arg(long)]
    flip_step: Option<usize>,
    /// Region Perturbation's square side, in pixels.
    #[arg(long, default_value_t = 8)]
    region_patch: usize,
    /// Region Perturbation's regions replaced, most relevant first.
    #[arg(long, default_value_t = 100)]
    regions: usize,
    /// Faithfulness Correlation's runs (random subsets).
    #[arg(long, default_value_t = 100)]
    fc_runs: usize,
    /// Faithfulness Correlation's channel values per subset.
    #[arg(long, default_value_t = 224)]
    fc_subset: usize,
    /// ROAD's percentiles of the map (pytorch-grad-cam's), separated by commas.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,30,40,50,60,70,80,90"
    )]
    road_percentiles: Vec<f64>,
    /// ROAD's imputation noise (standard deviation, in the model input's normalised units).
    #[arg(long, default_value_t = 0.01)]
    road_noise: f32,
    /// Quantus ROAD's (road_accuracy) percentages of the pixels imputed, separated by commas
    /// (default: Quantus's 1, 3, ..., 99).
    #[arg(long, value_delimiter = ',')]
    road_accuracy_percentages: Option<Vec<f64>>,
    /// IROF's superpixels: SLIC's number of segments (skimage's default, which Quantus uses).
    #[arg(long, default_value_t = 100)]
    irof_segments: usize,
    /// Max-Sensitivity's noisy copies of each image (each one explanation more; Quantus's
    /// default is 200).
    #[arg(long, default_value_t = 10)]
    ms_samples: usize,
    /// Max-Sensitivity's noise: uniform in ±R on every input value, in the model input's
    /// normalised units.
    #[arg(long, default_value_t = 0.2)]
    ms_radius: f32,
    /// MPRT: randomise only the top N layers (default: all of them, as Quantus).
    #[arg(long)]
    mprt_layers: Option<usize>,
    /// Refuse a run whose metrics need more forward passes than this per explanation.
    #[arg(long, default_value_t = DEFAULT_MAX_FORWARDS)]
    max_forwards: usize,
    /// Refuse a run whose metrics explain each image again more times than this
    /// (max_sensitivity: --ms-samples; random_logit: 1; mprt: one per randomised layer).
    #[arg(long, default_value_t = DEFAULT_MAX_EXPLANATIONS)]
    max_explanations: usize,
}

/// Default limit of re-explanations per image.
pub const DEFAULT_MAX_EXPLANATIONS: usize = 100;

impl MetricArgs {
    /// The scoring options, with `seed` for the random subsets; refuses a setting that cannot
    /// work in one line.
    pub fn options(&self, seed: u64) -> Result<ScoreOptions> {
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            bail!(
                "--tolerance {} must be a finite number of pixels, 0 or more",
                self.tolerance
            );
        }
        if let Some(p) = self
            .road_percentiles
            .iter()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            bail!("--road-percentiles {p} must lie between 0 and 100");
        }
        if let Some(p) = self
            .road_accuracy_percentages
            .iter()
            .flatten()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            bail!("--road-accuracy-percentages {p} must lie between 0 and 100");
        }
        if !(self.ms_radius.is_finite() && self.ms_radius > 0.0) {
            bail!(
                "--ms-radius {} must be a finite number above 0",
                self.ms_radius
            );
        }
        if !(self.road_noise.is_finite() && self.road_noise >= 0.0) {
            bail!(
                "--road-noise {} must be a finite number, 0 or more",
                self.road_noise
            );
        }
        for (name, value, least) in [
            ("--curve-steps", self.curve_steps, 1),
            ("--top-k", self.top_k, 1),
            ("--flip-step", self.flip_step.unwrap_or(1), 1),
            ("--region-patch", self.region_patch, 1),
            ("--regions", self.regions, 1),
            ("--fc-runs", self.fc_runs, 2),
            ("--fc-subset", self.fc_subset, 1),
            ("--max-forwards", self.max_forwards, 1),
            ("--ms-samples", self.ms_samples, 1),
            ("--irof-segments", self.irof_segments, 1),
            ("--mprt-layers", self.mprt_layers.unwrap_or(1), 1),
        ] {
            if value < least {
                bail!("{name} must be at least {least}");
            }
        }
        let defaults = ScoreOptions::default();
        Ok(ScoreOptions {
            confidence: self.score,
            curve_steps: self.curve_steps,
            tolerance: self.tolerance,
            extra: table::select(&self.metrics)?,
            top_k: self.top_k,
            flip_step: self.flip_step,
            region_patch: self.region_patch,
            regions: self.regions,
            fc_runs: self.fc_runs,
            fc_subset: self.fc_subset,
            road_percentiles: self.road_percentiles.clone(),
            road_noise: self.road_noise,
            road_accuracy_percentages: self
                .road_accuracy_percentages
                .clone()
                .unwrap_or(defaults.road_accuracy_percentages),
            irof_segments: self.irof_segments,
            ms_samples: self.ms_samples,
            ms_radius: self.ms_radius,
            mprt_layers: self.mprt_layers,
            seed,
        })
    }

    /// Refuses, in one line, options whose metrics need more forward passes per explanation
    /// than --max-forwards at a model input of `size`.
    pub fn check_budget(&self, options: &ScoreOptions, size: [usize; 2]) -> Result<()> {
        let values = options.subset_values(3 * size[0] * size[1]);
        if values > MAX_SUBSET_VALUES {
            bail!(
                "--fc-runs {} x --fc-subset {} would hold {values} channel values at once, over {MAX_SUBSET_VALUES}: lower one of them",
                self.fc_runs,
                self.fc_subset
            );
        }
        let forwards = options.forwards(3, size);
        if forwards > self.max_forwards {
            bail!(
                "these metrics need {forwards} forward passes per explanation at {}x{} (--curve-steps, --flip-step, --regions, --fc-runs, --road-percentiles, --road-accuracy-percentages, --irof-segments), over --max-forwards {}: lower those or raise --max-forwards",
                size[0],
                size[1],
                self.max_forwards
            );
        }
        Ok(())
    }

    /// Refuses, in one line, options whose metrics explain each image again more than
    /// --max-explanations times; `cascade`: the model's file as MPRT reads it, when MPRT is
    /// asked for.
    pub fn check_redo_budget(
        &self,
        options: &ScoreOptions,
        cascade: Option<&Cascade>,
    ) -> Result<()> {
        let redo = options.redo_options();
        if !redo.any() {
            return Ok(());
        }
        let layers = cascade.map_or(0, |c| c.layers().len());
        if redo.mprt_layers.is_some() && layers == 0 {
            bail!(
                "mprt: the model has no layer with weights stored as initialisers (Conv, Gemm, MatMul, BatchNormalization) to randomise; leave mprt out of --metrics"
            );
        }
        let requests = redo.requests(layers);
        if requests > self.max_explanations {
            let mut parts = Vec::new();
            if redo.ms_samples > 0 {
                parts.push(format!("--ms-samples {}", redo.ms_samples));
            }
            if redo.random_logit {
                parts.push("random_logit 1".to_string());
            }
            if let Some(limit) = redo.mprt_layers {
                parts.push(format!(
                    "mprt {} layers",
                    limit.unwrap_or(layers).min(layers)
                ));
            }
            bail!(
                "these metrics explain each image {requests} more times ({}), over --max-explanations {}: lower --ms-samples or --mprt-layers, or raise --max-explanations",
                parts.join(", "),
                self.max_explanations
            );
        }
        Ok(())
    }
}
