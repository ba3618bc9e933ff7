//! What the metrics that explain again found for one map ([`crate::reexplain`] fills it).

use super::randomisation::mean_over_layers;

/// The results per map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redone {
    /// Max-Sensitivity.
    pub max_sensitivity: Option<f64>,
    /// Random Logit's SSIM.
    pub random_logit: Option<f64>,
    /// MPRT's Spearman correlation per randomised layer, top down.
    pub mprt_spearman: Option<Vec<f64>>,
    /// MPRT's SSIM per randomised layer.
    pub mprt_ssim: Option<Vec<f64>>,
}

impl Redone {
    /// MPRT's mean Spearman correlation over the layers.
    pub fn mprt(&self) -> Option<f64> {
        self.mprt_spearman.as_deref().map(mean_over_layers)
    }

    /// MPRT's mean SSIM over the layers.
    pub fn mprt_ssim_mean(&self) -> Option<f64> {
        self.mprt_ssim.as_deref().map(mean_over_layers)
    }
}
