//! Captum's `NoiseTunnel` over any method: the request runs on `samples` noisy copies of the
//! input `x + N(0, stdev²)` (the baseline stays), and each map is the samples' mean
//! (`smoothgrad`), mean of squares (`smoothgrad_sq`) or variance (`vargrad`).
//!
//! The noise comes from igcam's documented generator ([`crate::cam::random`]), so a `seed`
//! reproduces it anywhere: values in sample, channel, row, column order.

use super::CamMap;
use crate::error::{Error, Message, Result};

/// How the noisy maps are combined (Captum's `nt_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum NoiseKind {
    /// The mean of the maps.
    #[default]
    #[cfg_attr(feature = "cli", value(name = "smoothgrad"))]
    SmoothGrad,
    /// The mean of the squared maps.
    #[cfg_attr(feature = "cli", value(name = "smoothgrad_sq"))]
    SmoothGradSq,
    /// The variance of the maps (mean of squares minus the squared mean).
    #[cfg_attr(feature = "cli", value(name = "vargrad"))]
    VarGrad,
}

impl NoiseKind {
    /// Every kind, in Captum's order.
    pub const ALL: [NoiseKind; 3] = [
        NoiseKind::SmoothGrad,
        NoiseKind::SmoothGradSq,
        NoiseKind::VarGrad,
    ];

    /// Parses Captum's name (`smoothgrad`, `smoothgrad_sq`, `vargrad`).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::InvalidOption(Message::from(format!(
                    "unknown noise tunnel `{name}` (one of: smoothgrad, smoothgrad_sq, vargrad)"
                )))
            })
    }

    /// Captum's name.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::SmoothGrad => "smoothgrad",
            NoiseKind::SmoothGradSq => "smoothgrad_sq",
            NoiseKind::VarGrad => "vargrad",
        }
    }
}

/// A noise tunnel around the request's methods.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseTunnel {
    /// How the maps are combined.
    pub kind: NoiseKind,
    /// Noisy copies of the input (Captum's `nt_samples`).
    pub samples: usize,
    /// Standard deviation of the noise, in the normalised input's units (Captum's `stdevs`).
    pub stdev: f32,
}

/// Running sums of one map over the samples.
#[derive(Clone, Debug, Default)]
pub struct Sums {
    sum: Vec<f64>,
    squares: Vec<f64>,
    samples: usize,
}

impl Sums {
    /// Adds one sample's map.
    pub fn add(&mut self, map: &CamMap) {
        if self.samples == 0 {
            self.sum = vec![0.0; map.values.len()];
            self.squares = vec![0.0; map.values.len()];
        }
        for ((s, q), &v) in self.sum.iter_mut().zip(&mut self.squares).zip(&map.values) {
            *s += v as f64;
            *q += v as f64 * v as f64;
        }
        self.samples += 1;
    }

    /// The combined map's values.
    pub fn combine(&self, kind: NoiseKind) -> Vec<f32> {
        let n = self.samples.max(1) as f64;
        self.sum
            .iter()
            .zip(&self.squares)
            .map(|(&s, &q)| {
                let (mean, mean_sq) = (s / n, q / n);
                (match kind {
                    NoiseKind::SmoothGrad => mean,
                    NoiseKind::SmoothGradSq => mean_sq,
                    NoiseKind::VarGrad => mean_sq - mean * mean,
                }) as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_combine_as_captum_does() {
        let mut sums = Sums::default();
        for v in [1.0, 3.0] {
            sums.add(&CamMap {
                height: 1,
                width: 1,
                values: vec![v],
            });
        }
        assert_eq!(sums.combine(NoiseKind::SmoothGrad), [2.0]);
        assert_eq!(sums.combine(NoiseKind::SmoothGradSq), [5.0]);
        assert_eq!(sums.combine(NoiseKind::VarGrad), [1.0]);
    }
}
