//! `eval`'s metric switches, one flattened group: which metrics, and each one's settings.

use anyhow::{Result, bail};
use clap::Args;
use igcam::metrics::Confidence;
use igcam::metrics::table;
use igcam::scoring::{MAX_SUBSET_VALUES, ScoreOptions};

/// Default limit of forward passes per explanation.
pub const DEFAULT_MAX_FORWARDS: usize = 2000;

/// The metrics and their settings.
#[derive(Args)]
pub struct MetricArgs {
    /// Metrics besides the paper's (which are always computed): `default` (none), `all`, or
    /// names separated by commas: top_k, sparseness, complexity, pixel_flipping,
    /// region_perturbation, faithfulness_correlation, road_morf, road_lerf, road_combined (see
    /// the README's metric table).
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
    /// Refuse a run whose metrics need more forward passes than this per explanation.
    #[arg(long, default_value_t = DEFAULT_MAX_FORWARDS)]
    max_forwards: usize,
}

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
        ] {
            if value < least {
                bail!("{name} must be at least {least}");
            }
        }
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
                "these metrics need {forwards} forward passes per explanation at {}x{} (--curve-steps, --flip-step, --regions, --fc-runs, --road-percentiles), over --max-forwards {}: lower those or raise --max-forwards",
                size[0],
                size[1],
                self.max_forwards
            );
        }
        Ok(())
    }
}
