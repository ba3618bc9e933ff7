//! Average Drop % and Increase in Confidence % (Chattopadhay et al., Grad-CAM++, 2018).

use super::pixels::ranked_pixels;
use crate::error::{Error, Message, Result};

/// How a class's confidence is read from the logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Confidence {
    /// Softmax probability (single-label models; the default).
    #[default]
    Softmax,
    /// Sigmoid of the logit (multi-label models such as TorchRay's VOC models).
    Sigmoid,
    /// The raw logit.
    Logit,
}

impl Confidence {
    /// Parses `softmax`, `sigmoid` or `logit`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "softmax" => Ok(Self::Softmax),
            "sigmoid" => Ok(Self::Sigmoid),
            "logit" => Ok(Self::Logit),
            _ => Err(Error::InvalidOption(Message::from(format!(
                "unknown score `{s}` (softmax, sigmoid, logit)"
            )))),
        }
    }

    /// Confidence of class `c` given all logits.
    pub fn of(self, logits: &[f32], c: usize) -> f64 {
        match self {
            Self::Softmax => f64::from(crate::labels::softmax(logits)[c]),
            Self::Sigmoid => 1.0 / (1.0 + (-f64::from(logits[c])).exp()),
            Self::Logit => f64::from(logits[c]),
        }
    }
}

/// A mask keeping the map's highest `fraction` of pixels (rounded to the nearest count).
pub fn top_fraction_mask(map: &[f32], fraction: f64) -> Vec<bool> {
    let keep = (map.len() as f64 * fraction).round() as usize;
    let mut mask = vec![false; map.len()];
    for i in ranked_pixels(map).into_iter().take(keep) {
        mask[i] = true;
    }
    mask
}

/// For one explanation: `(max(0, Y - O) / Y, O > Y)` where `Y` is the confidence on the image
/// and `O` on the masked image. Drop % and Increase % are 100 times their means.
pub fn drop_increase(y: f64, o: f64) -> (f64, bool) {
    let drop = if y > 0.0 { (y - o).max(0.0) / y } else { 0.0 };
    (drop, o > y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(drop_increase(0.5, 0.125), (0.75, false));
        assert_eq!(drop_increase(0.5, 0.6), (0.0, true));
        assert_eq!(
            drop_increase(0.5, 0.5),
            (0.0, false),
            "equal is no increase"
        );
        assert_eq!(
            top_fraction_mask(&[0.1, 0.9, 0.5, 0.7], 0.5),
            [false, true, false, true]
        );
        assert_eq!(
            top_fraction_mask(&[1.0; 4], 0.25),
            [true, false, false, false],
            "ties: first pixel"
        );
        assert!((Confidence::Sigmoid.of(&[0.0], 0) - 0.5).abs() < 1e-12);
        assert!((Confidence::Softmax.of(&[0.0, 0.0], 1) - 0.5).abs() < 1e-7);
    }
}
