//! The metrics that need the model: Drop/Increase on the top-15 % masked image and the
//! Deletion/Insertion curves. Pixel edits are made on the host in normalised CHW space; the
//! edited images go through the model in chunks.

use burn::tensor::{Device, Tensor, TensorData};

use super::deletion_insertion::{auc, deletion_order};
use super::drop_increase::{Confidence, drop_increase, top_fraction_mask};
use crate::error::Result;
use crate::onnx::{OnnxModel, host_values};

/// Share of pixels kept for Drop/Increase (the paper's 15 %).
pub const KEEP_FRACTION: f64 = 0.15;

/// One image prepared for the faithfulness metrics, all in normalised CHW floats.
pub struct FaithfulnessInput<'a> {
    /// The model.
    pub model: &'a OnnxModel,
    /// The image.
    pub image: &'a [f32],
    /// A black image (deletion target and the masked image's background).
    pub black: &'a [f32],
    /// A blurred copy of the image (insertion's start).
    pub blurred: &'a [f32],
    /// Model input `[height, width]`.
    pub size: [usize; 2],
    /// Images per forward pass.
    pub batch: usize,
    /// How confidence is read from the logits.
    pub confidence: Confidence,
}

/// Faithfulness scores of one explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Faithfulness {
    /// `max(0, Y - O) / Y`.
    pub drop: f64,
    /// `O > Y`.
    pub increase: bool,
    /// Deletion AUC (lower is better).
    pub deletion: f64,
    /// Insertion AUC (higher is better).
    pub insertion: f64,
    /// The deletion curve: the confidence at each step, from the image to black.
    pub deletion_curve: Vec<f64>,
    /// The insertion curve: from the blurred image to the image.
    pub insertion_curve: Vec<f64>,
}

impl FaithfulnessInput<'_> {
    pub(super) fn plane(&self) -> usize {
        self.size[0] * self.size[1]
    }

    /// `base` with the pixels in `pixels` taken from `source` (all channels).
    pub(super) fn paste(&self, base: &mut [f32], source: &[f32], pixels: &[usize]) {
        let plane = self.plane();
        for c in 0..base.len() / plane {
            for &p in pixels {
                base[c * plane + p] = source[c * plane + p];
            }
        }
    }

    /// The logits of each image in `images`: whole CHW images one after another, pushed
    /// through the model in chunks of `batch`.
    fn logits(&self, images: Vec<f32>, device: &Device) -> Result<Vec<Vec<f32>>> {
        let chw = self.image.len();
        let per_chunk = self.batch.max(1) * chw;
        if images.len() > per_chunk {
            let mut out = Vec::with_capacity(images.len() / chw.max(1));
            for chunk in images.chunks(per_chunk) {
                out.extend(self.logits(chunk.to_vec(), device)?);
            }
            return Ok(out);
        }
        let shape = [
            images.len() / chw,
            chw / self.plane(),
            self.size[0],
            self.size[1],
        ];
        let x = Tensor::<4>::from_data(TensorData::new(images, shape), device);
        let logits = host_values(self.model.forward(x)?)?;
        Ok(logits
            .chunks(self.model.num_classes())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Scores `map` (upsampled, `height * width`) for `target`, with `steps` steps per curve.
    pub fn score(&self, map: &[f32], target: usize, steps: usize) -> Result<Faithfulness> {
        Ok(self.score_all(&[(map, target)], steps)?.remove(0))
    }

    /// Scores every `(map, target)` of one image at once: the edited images of all of them go
    /// through the model together, in chunks of `batch`. The image itself, the all-black image
    /// (the end of every deletion curve) and the blurred image (the start of every insertion
    /// curve) are each run once.
    pub fn score_all(
        &self,
        explained: &[(&[f32], usize)],
        steps: usize,
    ) -> Result<Vec<Faithfulness>> {
        let device = self.model.device();
        let steps = steps.max(1);
        // Shared images, run once: 0 = the image, 1 = black, 2 = blurred.
        let shared = self.logits([self.image, self.black, self.blurred].concat(), device)?;
        // Per explanation: the masked image, then deletion and insertion step 1, step 2, ...,
        // made one at a time and scored a batch at a time (memory stays at one batch however
        // many steps the curves have).
        let per = 1 + 2 * (steps - 1);
        let mut scorer = Scorer::new(self, device);
        for &(map, target) in explained {
            let keep = top_fraction_mask(map, KEEP_FRACTION);
            let kept: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
            let mut masked = self.black.to_vec();
            self.paste(&mut masked, self.image, &kept);
            scorer.push(&masked, target)?;
            let order = deletion_order(map);
            let mut deleting = self.image.to_vec();
            let mut inserting = self.blurred.to_vec();
            for s in 0..steps - 1 {
                let (from, to) = (s * order.len() / steps, (s + 1) * order.len() / steps);
                self.paste(&mut deleting, self.black, &order[from..to]);
                self.paste(&mut inserting, self.image, &order[from..to]);
                scorer.push(&deleting, target)?;
                scorer.push(&inserting, target)?;
            }
        }
        let scores = scorer.finish()?;
        Ok(explained
            .iter()
            .enumerate()
            .map(|(k, &(_, target))| {
                let fixed = |i: usize| self.confidence.of(&shared[i], target);
                let base = k * per;
                let (drop, increase) = drop_increase(fixed(0), scores[base]);
                // Deletion: the image, the steps, then all black; insertion: the blurred image,
                // the steps, then the whole image.
                let mut deletion = vec![fixed(0)];
                deletion.extend((0..steps - 1).map(|s| scores[base + 1 + 2 * s]));
                deletion.push(fixed(1));
                let mut insertion = vec![fixed(2)];
                insertion.extend((0..steps - 1).map(|s| scores[base + 2 + 2 * s]));
                insertion.push(fixed(0));
                Faithfulness {
                    drop,
                    increase,
                    deletion: auc(&deletion),
                    insertion: auc(&insertion),
                    deletion_curve: deletion,
                    insertion_curve: insertion,
                }
            })
            .collect())
    }
}

/// Runs edited images through the model a batch at a time and keeps only each one's
/// confidence for its target (or, for [`Scorer::push_hit`], whether the target is the top
/// class: 1 or 0).
pub(super) struct Scorer<'a, 'b> {
    input: &'a FaithfulnessInput<'b>,
    device: &'a Device,
    /// The images waiting for the next chunk, one after another.
    pending: Vec<f32>,
    /// Each pending image's target, and whether it asks for the hit.
    targets: Vec<(usize, bool)>,
    scores: Vec<f64>,
}

impl<'a, 'b> Scorer<'a, 'b> {
    pub(super) fn new(input: &'a FaithfulnessInput<'b>, device: &'a Device) -> Self {
        Self {
            input,
            device,
            pending: Vec::new(),
            targets: Vec::new(),
            scores: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, image: &[f32], target: usize) -> Result<()> {
        self.push_read(image, target, false)
    }

    /// Pushes `image` to be read as 1 when `target` is its top class (the first of equal
    /// logits, as numpy's argmax), else 0.
    pub(super) fn push_hit(&mut self, image: &[f32], target: usize) -> Result<()> {
        self.push_read(image, target, true)
    }

    fn push_read(&mut self, image: &[f32], target: usize, hit: bool) -> Result<()> {
        self.pending.extend_from_slice(image);
        self.targets.push((target, hit));
        if self.targets.len() >= self.input.batch.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let logits = self
            .input
            .logits(std::mem::take(&mut self.pending), self.device)?;
        for (l, &(t, hit)) in logits.iter().zip(&self.targets) {
            self.scores.push(if hit && l.iter().any(|v| v.is_nan()) {
                f64::NAN // a failed imputation: no top class
            } else if hit {
                let top = (0..l.len()).fold(0, |best, i| if l[i] > l[best] { i } else { best });
                f64::from(u8::from(top == t))
            } else {
                self.input.confidence.of(l, t)
            });
        }
        self.targets.clear();
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Vec<f64>> {
        self.flush()?;
        Ok(self.scores)
    }
}
