//! What a gradient is taken of: one class's logit (summed over the batch), Finer-CAM's
//! weighted difference between a class and the classes it is most easily confused with, or a
//! segmenter's class scores summed over a region (pytorch-grad-cam's
//! `SemanticSegmentationTarget`).

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData, activation};

use super::backprop::target_seed;
use super::value::{FloatValue, host_values};
use crate::error::{Error, Result};

/// pytorch-grad-cam's guard in Finer-CAM's denominator.
const FINER_EPS: f64 = 1e-9;

/// The scalar whose gradient a reverse pass takes, summed over the batch's rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Objective {
    /// The class's logit `S_c`.
    Logit(usize),
    /// pytorch-grad-cam's `FinerWeightedTarget`:
    /// `sum_j p_j (S_c - alpha S_j) / (sum_j p_j + 1e-9)` over the comparison classes `j`,
    /// `p = softmax(S)` (differentiated too).
    Finer {
        /// The explained class `c`.
        class: usize,
        /// The comparison classes `j`.
        comparisons: Vec<usize>,
        /// How strongly the comparison classes are subtracted.
        alpha: f32,
    },
    /// A segmenter's scores of `class` summed over a region: `sum_p mask_p S_{class, p}` over
    /// the output plane's `plane` pixels (the region's pixels weigh 1, the others 0).
    Region {
        /// The explained class.
        class: usize,
        /// Pixels per class in the output (`H·W`).
        plane: usize,
        /// Each pixel's weight, row-major over the output plane.
        mask: Arc<[f32]>,
    },
    /// A detector's detection: one output value `S_index` (its class score at its anchor),
    /// times `S_objectness` where the layout has one (YOLOv5's confidence).
    Detection {
        /// The class score's index in one image's output.
        index: usize,
        /// The objectness's index, where the layout has one.
        objectness: Option<usize>,
    },
}

impl Objective {
    /// The class the objective explains.
    pub fn class(&self) -> usize {
        match self {
            Objective::Logit(c)
            | Objective::Finer { class: c, .. }
            | Objective::Region { class: c, .. } => *c,
            Objective::Detection { index, .. } => *index,
        }
    }

    /// `d objective / d logits` for the logits `output` (`[N, classes]` values in any shape;
    /// `classes` is the output values per image, a segmenter's `K·H·W`), as a tensor of the
    /// same shape: the reverse pass's seed.
    pub fn seed(&self, output: &FloatValue, classes: usize) -> Result<FloatValue> {
        let values: Vec<f32> = match self {
            Objective::Logit(target) => return Ok(target_seed(output, classes, *target)),
            Objective::Finer {
                class,
                comparisons,
                alpha,
            } => {
                let logits = host_values(output.tensor.clone())?;
                logits
                    .chunks_exact(classes)
                    .flat_map(|row| finer_row_gradient(row, *class, comparisons, *alpha as f64))
                    .collect()
            }
            Objective::Region { class, plane, mask } => {
                let n = output.tensor.dims().iter().product::<usize>();
                let mut values = vec![0.0f32; n];
                for row in values.chunks_exact_mut(classes) {
                    row[class * plane..(class + 1) * plane].copy_from_slice(mask);
                }
                values
            }
            Objective::Detection { index, objectness } => {
                let outputs = host_values(output.tensor.clone())?;
                let mut values = vec![0.0f32; outputs.len()];
                for (row, out) in values
                    .chunks_exact_mut(classes)
                    .zip(outputs.chunks_exact(classes))
                {
                    for (i, v) in detection_seed(*index, *objectness, out) {
                        row[i] = v;
                    }
                }
                values
            }
        };
        Ok(output.with_tensor(super::host::tensor(
            values,
            output.tensor.dims(),
            &output.tensor.device(),
        )))
    }

    /// The seed's nonzero values as `(flat position in the output, value)` where the
    /// objective reads a few of the output's values (a detection's score at its anchor, and
    /// its objectness), so that the reverse pass can start from them alone
    /// ([`Grad::of_values`](super::boxed::Grad::of_values)); `None` for the others, whose
    /// seed is [`Objective::seed`].
    pub fn seed_values(
        &self,
        output: &FloatValue,
        classes: usize,
    ) -> Result<Option<Vec<(usize, f32)>>> {
        let Objective::Detection { index, objectness } = self else {
            return Ok(None);
        };
        debug_assert_ne!(
            Some(*index),
            *objectness,
            "a score is not its own objectness"
        );
        let n = output.tensor.dims().iter().product::<usize>();
        let rows = n / classes.max(1);
        let values = super::host::with_floats(&output.tensor, |out| {
            (0..rows)
                .flat_map(|r| {
                    let row = &out[r * classes..(r + 1) * classes];
                    detection_seed(*index, *objectness, row).map(move |(i, v)| (r * classes + i, v))
                })
                .collect()
        })
        .map_err(|e| Error::Backend(e.to_string()))?;
        Ok(Some(values))
    }

    /// The seed's tangent when the output moves along `tangent` (a Hessian-vector product's):
    /// `None` where the seed does not depend on the output (a logit, a region's sum, a
    /// detection's score), the seed of the tangent for YOLOv5's `score · objectness` (whose
    /// seed is linear in the output).
    pub fn seed_tangent(&self, tangent: &FloatValue, classes: usize) -> Result<Option<FloatValue>> {
        match self {
            Objective::Logit(_) | Objective::Region { .. } => Ok(None),
            Objective::Detection { objectness, .. } => match objectness {
                Some(_) => self.seed(tangent, classes).map(Some),
                None => Ok(None),
            },
            Objective::Finer { .. } => Err(Error::Internal(
                "no Hessian-vector product of Finer-CAM's objective".into(),
            )),
        }
    }

    /// The objective of tracked `logits` (`[N, classes]`), summed over the rows, for Burn's
    /// autodiff.
    pub fn of_logits(&self, logits: Tensor<2>) -> Tensor<1> {
        self.per_image(logits).sum()
    }

    /// The objective of each image's `logits` (`[N, classes]` to `[N, 1]`): the score the
    /// re-running methods (Score-CAM, Ablation-CAM) compare.
    pub fn per_image(&self, logits: Tensor<2>) -> Tensor<2> {
        match self {
            Objective::Logit(c) => logits.narrow(1, *c, 1),
            Objective::Detection { index, objectness } => {
                let score = logits.clone().narrow(1, *index, 1);
                match objectness {
                    Some(o) => score.mul(logits.narrow(1, *o, 1)),
                    None => score,
                }
            }
            Objective::Region { class, plane, mask } => {
                let weights = Tensor::<2>::from_data(
                    TensorData::new(mask.to_vec(), [1, *plane]),
                    &logits.device(),
                );
                logits
                    .narrow(1, class * plane, *plane)
                    .mul(weights)
                    .sum_dim(1)
            }
            Objective::Finer {
                class,
                comparisons,
                alpha,
            } => {
                let p = activation::softmax(logits.clone(), 1);
                let main = logits.clone().narrow(1, *class, 1);
                let mut numerator = main.zeros_like();
                let mut denominator = main.zeros_like();
                for &j in comparisons {
                    let pj = p.clone().narrow(1, j, 1);
                    let gap = main
                        .clone()
                        .sub(logits.clone().narrow(1, j, 1).mul_scalar(*alpha));
                    numerator = numerator.add(pj.clone().mul(gap));
                    denominator = denominator.add(pj);
                }
                numerator.div(denominator.add_scalar(FINER_EPS as f32))
            }
        }
    }
}

/// A detection's seed in one image's outputs `out`, as `(index, value)`: the score `s` alone
/// (`ds/ds = 1`), or times the objectness `o` (`d(s o)/ds = o`, `d(s o)/do = s`).
fn detection_seed(
    index: usize,
    objectness: Option<usize>,
    out: &[f32],
) -> impl Iterator<Item = (usize, f32)> {
    let values = match objectness {
        Some(o) => [Some((index, out[o])), Some((o, out[index]))],
        None => [Some((index, 1.0)), None],
    };
    values.into_iter().flatten()
}

/// `d/dS_k` of Finer's objective for one row of logits `s`, in f64.
fn finer_row_gradient(s: &[f32], class: usize, comparisons: &[usize], alpha: f64) -> Vec<f32> {
    let s: Vec<f64> = s.iter().map(|&v| v as f64).collect();
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let p: Vec<f64> = exp.iter().map(|e| e / total).collect();
    let gap = |j: usize| s[class] - alpha * s[j];
    let numerator: f64 = comparisons.iter().map(|&j| p[j] * gap(j)).sum();
    let denominator: f64 = comparisons.iter().map(|&j| p[j]).sum::<f64>() + FINER_EPS;
    (0..s.len())
        .map(|k| {
            // dp_j/dS_k = p_j (delta_jk - p_k).
            let dp = |j: usize| p[j] * (f64::from(u8::from(j == k)) - p[k]);
            let d_numerator: f64 = comparisons
                .iter()
                .map(|&j| {
                    let d_gap =
                        f64::from(u8::from(k == class)) - alpha * f64::from(u8::from(k == j));
                    dp(j) * gap(j) + p[j] * d_gap
                })
                .sum();
            let d_denominator: f64 = comparisons.iter().map(|&j| dp(j)).sum();
            ((d_numerator * denominator - numerator * d_denominator) / (denominator * denominator))
                as f32
        })
        .collect()
}

/// Finer-CAM's comparison classes for `class` (pytorch-grad-cam's default): the three classes
/// whose logits at the photo are nearest to the class's, nearest first.
pub fn finer_comparisons(logits: &[f32], class: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let gap = |k: usize| (logits[k] - logits[class]).abs();
    order.sort_by(|&a, &b| gap(a).total_cmp(&gap(b)).then(a.cmp(&b)));
    order.into_iter().filter(|&k| k != class).take(3).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's tangent: none for a logit or a plain detection score; for YOLOv5's
    /// `score · objectness`, the seed's own rule applied to the output's tangent (it is linear
    /// in the output): `d/dt (o, s) = (ȯ, ṡ)` at the score's and the objectness's places.
    #[test]
    fn seed_tangents_follow_the_objective() {
        let device = burn::tensor::Device::flex();
        let value =
            |v: Vec<f32>| FloatValue::nchw(super::super::host::tensor(v, [2, 3, 1, 1], &device));
        let tangent = value(vec![0.5, -2.0, 3.0, 1.5, 4.0, -1.0]);
        assert!(
            Objective::Logit(1)
                .seed_tangent(&tangent, 3)
                .unwrap()
                .is_none()
        );
        let plain = Objective::Detection {
            index: 1,
            objectness: None,
        };
        assert!(plain.seed_tangent(&tangent, 3).unwrap().is_none());
        let scaled = Objective::Detection {
            index: 1,
            objectness: Some(2),
        };
        let got = scaled.seed_tangent(&tangent, 3).unwrap().unwrap();
        let got = host_values(got.tensor).unwrap();
        assert_eq!(got, vec![0.0, 3.0, -2.0, 0.0, -1.0, 4.0]);
    }

    #[test]
    fn finer_gradient_matches_finite_differences() {
        let s = [1.0f32, 2.5, 2.0, -1.0, 2.2];
        let (class, comparisons, alpha) = (1, vec![4, 2, 0], 0.7);
        let objective = |s: &[f64]| {
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
            let t: f64 = e.iter().sum();
            let num: f64 = comparisons
                .iter()
                .map(|&j| e[j] / t * (s[class] - alpha * s[j]))
                .sum();
            let den: f64 = comparisons.iter().map(|&j| e[j] / t).sum::<f64>() + FINER_EPS;
            num / den
        };
        let got = finer_row_gradient(&s, class, &comparisons, alpha);
        for k in 0..s.len() {
            let h = 1e-6;
            let mut up: Vec<f64> = s.iter().map(|&v| v as f64).collect();
            let mut down = up.clone();
            up[k] += h;
            down[k] -= h;
            let want = (objective(&up) - objective(&down)) / (2.0 * h);
            assert!(
                (got[k] as f64 - want).abs() < 1e-6,
                "k = {k}: {} vs {want}",
                got[k]
            );
        }
    }

    #[test]
    fn comparisons_are_the_nearest_logits() {
        assert_eq!(
            finer_comparisons(&[1.0, 2.5, 2.0, -1.0, 2.2, 9.0], 1),
            [4, 2, 0]
        );
    }
}
