//! Every metric `eval` knows, one row each: its name (as `--metrics` and `rows.jsonl` spell
//! it), its family, which way is better, whether it needs the model or a mask, and where it is
//! defined. A new metric is a pure function in `metrics/` plus a row here.

use super::games::GameScores;
use super::redone::Redone;
use super::{complexity, sparseness, top_k_intersection};
use crate::error::{Error, Message, Result, Setting};

/// What a metric beyond the paper's set reads its value from: the map the metrics read (at the
/// input, min-max scaled), the class's mask, the games played on the image.
pub struct Reading<'a> {
    /// The map.
    pub map: &'a [f32],
    /// The class's ground truth, when known.
    pub mask: Option<&'a [bool]>,
    /// The perturbation games' scores.
    pub played: &'a GameScores,
    /// Top-K Intersection's `k`.
    pub top_k: usize,
    /// The explanations redone.
    pub redone: &'a Redone,
}

/// What a metric reads besides the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The map alone.
    Map,
    /// The ground-truth mask of the class.
    Mask,
    /// Forward passes of edited images.
    Model,
    /// The explanation redone (other inputs, classes or weights).
    Explainer,
}

/// One metric.
#[derive(Clone, Copy, Debug)]
pub struct MetricInfo {
    /// `--metrics` name and `rows.jsonl` key.
    pub name: &'static str,
    /// Quantus's family.
    pub family: &'static str,
    /// Whether a higher value is better.
    pub higher_is_better: bool,
    /// What it reads.
    pub needs: Needs,
    /// In the paper's set, computed on every run (a fixed column of `rows.jsonl`).
    pub paper: bool,
    /// The definition followed, and the peer's name for it.
    pub source: &'static str,
    /// Its value (the paper's metrics have fixed fields and read nothing here); `None` where it
    /// cannot be computed (no mask).
    pub read: fn(&Reading) -> Option<f64>,
}

const fn row(
    name: &'static str,
    family: &'static str,
    higher_is_better: bool,
    needs: Needs,
    paper: bool,
    source: &'static str,
    read: fn(&Reading) -> Option<f64>,
) -> MetricInfo {
    MetricInfo {
        name,
        family,
        higher_is_better,
        needs,
        paper,
        source,
        read,
    }
}

impl PartialEq for MetricInfo {
    /// Rows are told apart by name (they are unique).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The paper's metrics' `read`: their values live in fixed fields.
fn fixed(_: &Reading) -> Option<f64> {
    None
}

/// The table.
pub const METRICS: &[MetricInfo] = &[
    row(
        "ebpg",
        "localisation",
        true,
        Needs::Mask,
        true,
        "energy-based pointing game (Wang et al. 2020); = Quantus RelevanceMassAccuracy",
        fixed,
    ),
    row(
        "bbox",
        "localisation",
        true,
        Needs::Mask,
        true,
        "Bbox accuracy (Schulz et al. 2020); = Quantus RelevanceRankAccuracy",
        fixed,
    ),
    row(
        "pointing",
        "localisation",
        true,
        Needs::Mask,
        true,
        "pointing game with 15 px tolerance (Zhang et al. 2018)",
        fixed,
    ),
    row(
        "drop",
        "faithfulness",
        false,
        Needs::Model,
        true,
        "Average Drop (Chattopadhay et al. 2018)",
        fixed,
    ),
    row(
        "increase",
        "faithfulness",
        true,
        Needs::Model,
        true,
        "Increase in Confidence (Chattopadhay et al. 2018)",
        fixed,
    ),
    row(
        "deletion",
        "faithfulness",
        false,
        Needs::Model,
        true,
        "Deletion AUC (Petsiuk et al. 2018)",
        fixed,
    ),
    row(
        "insertion",
        "faithfulness",
        true,
        Needs::Model,
        true,
        "Insertion AUC (Petsiuk et al. 2018)",
        fixed,
    ),
    row(
        "top_k",
        "localisation",
        true,
        Needs::Mask,
        false,
        "Top-K Intersection (Theiner et al. 2021); Quantus TopKIntersection",
        |r| r.mask.and_then(|m| top_k_intersection(r.map, m, r.top_k)),
    ),
    row(
        "sparseness",
        "complexity",
        true,
        Needs::Map,
        false,
        "Gini index (Chalasani et al. 2020); Quantus Sparseness",
        |r| Some(sparseness(r.map)),
    ),
    row(
        "complexity",
        "complexity",
        false,
        Needs::Map,
        false,
        "entropy (Bhatt et al. 2020); Quantus Complexity",
        |r| Some(complexity(r.map)),
    ),
    row(
        "pixel_flipping",
        "faithfulness",
        false,
        Needs::Model,
        false,
        "Pixel-Flipping AUC (Bach et al. 2015); Quantus PixelFlipping, return_auc_per_sample",
        |r| r.played.pixel_flipping,
    ),
    row(
        "region_perturbation",
        "faithfulness",
        true,
        Needs::Model,
        false,
        "Region Perturbation MoRF AOPC (Samek et al. 2016); mean of Quantus RegionPerturbation's curve",
        |r| r.played.region_perturbation,
    ),
    row(
        "faithfulness_correlation",
        "faithfulness",
        true,
        Needs::Model,
        false,
        "Faithfulness Correlation (Bhatt et al. 2020); Quantus FaithfulnessCorrelation",
        |r| r.played.faithfulness_correlation,
    ),
    row(
        "road_morf",
        "faithfulness",
        false,
        Needs::Model,
        false,
        "ROAD, most relevant first (Rong et al. 2022); pytorch-grad-cam ROADMostRelevantFirstAverage",
        |r| r.played.road_morf,
    ),
    row(
        "road_lerf",
        "faithfulness",
        true,
        Needs::Model,
        false,
        "ROAD, least relevant first (Rong et al. 2022); pytorch-grad-cam ROADLeastRelevantFirstAverage",
        |r| r.played.road_lerf,
    ),
    row(
        "road_combined",
        "faithfulness",
        true,
        Needs::Model,
        false,
        "ROAD, (LeRF - MoRF) / 2 (Rong et al. 2022); pytorch-grad-cam ROADCombined",
        |r| Some((r.played.road_lerf? - r.played.road_morf?) / 2.0),
    ),
    row(
        "road_accuracy",
        "faithfulness",
        false,
        Needs::Model,
        false,
        "ROAD as Quantus plays it: share of its percentages at which the class is still the top one, most relevant pixels imputed (Rong et al. 2022); Quantus ROAD",
        |r| r.played.road_accuracy,
    ),
    row(
        "irof",
        "faithfulness",
        true,
        Needs::Model,
        false,
        "IROF, area over the relative confidence curve as SLIC superpixels go to black (Rieger and Hansen 2020); Quantus IROF",
        |r| r.played.irof,
    ),
    row(
        "max_sensitivity",
        "robustness",
        false,
        Needs::Explainer,
        false,
        "Max-Sensitivity (Yeh et al. 2019), on the maps as read; Quantus MaxSensitivity",
        |r| r.redone.max_sensitivity,
    ),
    row(
        "random_logit",
        "randomisation",
        false,
        Needs::Explainer,
        false,
        "Random Logit, SSIM to another class's map (Sixt et al. 2020); Quantus RandomLogit",
        |r| r.redone.random_logit,
    ),
    row(
        "mprt",
        "randomisation",
        false,
        Needs::Explainer,
        false,
        "MPRT, mean Spearman over the randomised layers (Adebayo et al. 2018); Quantus MPRT, per layer",
        |r| r.redone.mprt(),
    ),
    row(
        "mprt_ssim",
        "randomisation",
        false,
        Needs::Explainer,
        false,
        "MPRT, mean SSIM over the randomised layers (Adebayo et al. 2018); Quantus MPRT with ssim, per layer",
        |r| r.redone.mprt_ssim_mean(),
    ),
];

/// The row of `name`, if there is one.
pub fn info(name: &str) -> Option<&'static MetricInfo> {
    METRICS.iter().find(|m| m.name == name)
}

/// The metrics beyond the paper's set that `spec` asks for, in table order: `default` (none),
/// `all` (also inside a list), or names separated by commas (the paper's names are accepted
/// and always computed).
pub fn select(spec: &str) -> Result<Vec<&'static MetricInfo>> {
    if spec.split(',').any(|n| n.trim() == "all") {
        return Ok(METRICS.iter().filter(|m| !m.paper).collect());
    }
    let mut wanted = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "default" {
            continue;
        }
        let Some(m) = info(name) else {
            let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
            return Err(Error::InvalidOption(
                Message::from(format!("unknown metric `{name}` in "))
                    .then(Setting::Metrics)
                    .text(format!(
                        ": use default, all, or some of {}",
                        names.join(", ")
                    )),
            ));
        };
        if !m.paper {
            wanted.push(m.name);
        }
    }
    Ok(METRICS
        .iter()
        .filter(|m| wanted.contains(&m.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        assert!(select("default").unwrap().is_empty());
        assert!(
            select("ebpg,deletion").unwrap().is_empty(),
            "paper's, always on"
        );
        let all: Vec<&str> = select("all").unwrap().iter().map(|m| m.name).collect();
        assert_eq!(all.len(), 15);
        let some: Vec<&str> = select(" complexity , top_k ")
            .unwrap()
            .iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(some, ["top_k", "complexity"], "table order");
        assert_eq!(
            select("ebpg,roadd").unwrap_err().to_string(),
            "invalid option: unknown metric `roadd` in `metrics`: use default, all, or some of ebpg, bbox, pointing, drop, increase, deletion, insertion, top_k, sparseness, complexity, pixel_flipping, region_perturbation, faithfulness_correlation, road_morf, road_lerf, road_combined, road_accuracy, irof, max_sensitivity, random_logit, mprt, mprt_ssim"
        );
        assert_eq!(select("top_k, all").unwrap().len(), 15, "all in a list");
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "names are unique");
    }
}
