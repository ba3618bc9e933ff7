//! Every metric of the explanations of one photo, computed the one way `eval` and the Python
//! binding share: each map as the metrics read it (resized to the input, min-max scaled), the
//! localisation metrics against a class mask where there is one, and the faithfulness metrics
//! on edits of the photo normalised with the explainer's preset (the black image, and the
//! photo blurred with σ = 5 as insertion's start), pushed through the model in chunks.

use image::RgbImage;

use crate::cam::CamMap;
use crate::error::{Error, Message, Result};
use crate::explainer::Explainer;
use crate::metrics::{
    Confidence, Faithfulness, FaithfulnessInput, bbox_accuracy, ebpg, pointing_hit,
};
use crate::preprocess::{self, Baseline};
use crate::render;

/// How the metrics are computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreOptions {
    /// How a class's confidence is read from the logits (Drop/Increase and the curves).
    pub confidence: Confidence,
    /// Steps of the Deletion and Insertion curves.
    pub curve_steps: usize,
    /// The pointing game's tolerance, in pixels.
    pub tolerance: f64,
}

impl Default for ScoreOptions {
    /// `eval`'s defaults: softmax, 16 curve steps, 15 pixels.
    fn default() -> Self {
        Self {
            confidence: Confidence::Softmax,
            curve_steps: 16,
            tolerance: 15.0,
        }
    }
}

/// One explanation to score: its map, its class, and the class's mask (`H * W` at the model's
/// input, `true` inside the object) when one is known.
pub struct ToScore<'a> {
    /// The raw map.
    pub map: &'a CamMap,
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
}

/// Scores every explanation of `photo` (the prepared photo, at the model's input size) at once.
pub fn score(
    explainer: &Explainer,
    photo: &RgbImage,
    explained: &[ToScore],
    options: ScoreOptions,
) -> Result<Vec<Scores>> {
    let size = explainer.model().input_size();
    let pixels = size[0] * size[1];
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
    let maps: Vec<Vec<f32>> = explained
        .iter()
        .map(|e| {
            render::normalise_min_max(&render::upsample_bilinear(e.map, size[0], size[1]).values)
        })
        .collect();
    let jobs: Vec<(&[f32], usize)> = maps
        .iter()
        .zip(explained)
        .map(|(m, e)| (m.as_slice(), e.target))
        .collect();
    let faithfulness = faith.score_all(&jobs, options.curve_steps)?;
    Ok(maps
        .into_iter()
        .zip(explained)
        .zip(faithfulness)
        .map(|((map, e), faithfulness)| Scores {
            ebpg: e.mask.map(|mask| ebpg(&map, mask)),
            bbox: e.mask.and_then(|mask| bbox_accuracy(&map, mask)),
            pointing: e
                .mask
                .and_then(|mask| pointing_hit(&map, mask, size[1], options.tolerance)),
            map,
            faithfulness,
        })
        .collect())
}
