//! The straight path from a baseline to the input, and path integration of any [`CamMethod`].
//!
//! Integrated Grad-CAM is `integrate(GradCam)` over a left Riemann sum with `m` steps
//! (`alpha_i = i/m`, `i = 0..m-1`): `map = sum_i relu(sum_k A_k(x_i) * w_k(x_i))`, with no `1/m`.
//! A plain (non-integrated) method is the same sum over the single point `alpha = 1`.

use burn::tensor::{Tensor, TensorData, activation};

use super::CamMethod;
use crate::error::{Error, Result};
use crate::onnx::OnnxModel;

/// Path positions: `i/m` for `i in 0..m` when integrating, else just the input (`1.0`).
pub fn alphas(steps: usize, integrate: bool) -> Vec<f32> {
    if integrate {
        (0..steps).map(|i| i as f32 / steps as f32).collect()
    } else {
        vec![1.0]
    }
}

/// The batch of path points `b + (x - b) * alpha` for the given alphas (`x`, `b`: `[1, C, H, W]`).
pub fn path_points(x: &Tensor<4>, baseline: &Tensor<4>, alphas: &[f32]) -> Tensor<4> {
    let n = alphas.len();
    let a = Tensor::<4>::from_data(TensorData::new(alphas.to_vec(), [n, 1, 1, 1]), &x.device());
    let diff = x.clone().sub(baseline.clone());
    baseline.clone().add(diff.mul(a))
}

/// Everything one path integration needs besides the method.
pub struct PathRun<'a> {
    /// The model.
    pub model: &'a OnnxModel,
    /// Normalised input `[1, C, H, W]`.
    pub input: &'a Tensor<4>,
    /// Normalised baseline `[1, C, H, W]`.
    pub baseline: &'a Tensor<4>,
    /// Target class index.
    pub target: usize,
    /// Path positions (see [`alphas`]).
    pub alphas: &'a [f32],
    /// Path points per forward/backward chunk.
    pub batch: usize,
}

impl PathRun<'_> {
    /// Validates the target and batch before any work is done.
    pub fn check(&self) -> Result<()> {
        if self.target >= self.model.num_classes() {
            return Err(Error::TargetOutOfRange {
                index: self.target,
                classes: self.model.num_classes(),
            });
        }
        if self.batch == 0 {
            return Err(Error::InvalidOption("--batch must be at least 1".into()));
        }
        if self.alphas.is_empty() {
            return Err(Error::InvalidOption("--steps must be at least 1".into()));
        }
        Ok(())
    }

    /// Gradient of the target logit with respect to the tracked `leaf`, from tracked `logits`.
    pub fn target_gradient(&self, logits: Tensor<2>, leaf: &Tensor<4>) -> Result<Tensor<4>> {
        let score = logits.narrow(1, self.target, 1).sum();
        let grads = score.backward();
        leaf.grad(&grads)
            .ok_or_else(|| Error::Backend("the target score does not depend on the layer".into()))
    }
}

/// One chunk of the path: `sum_i relu(sum_k w_k * A_k)` over the points `[B, C, H, W]`, as a
/// `[1, 1, h, w]` tensor still on the device.
pub(crate) fn cam_chunk(
    run: &PathRun,
    method: &dyn CamMethod,
    layer: &str,
    points: Tensor<4>,
) -> Result<Tensor<4>> {
    let (activations, env) = run.model.forward_to(points, layer)?;
    let leaf = activations.clone().autodiff().require_grad();
    let logits = run.model.forward_from(env, layer, leaf.clone())?;
    let gradients = run.target_gradient(logits, &leaf)?;
    let weights = method.weights(activations.clone(), gradients);
    Ok(activation::relu(weights.mul(activations).sum_dim(1)).sum_dim(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_riemann_alphas_include_the_baseline_and_exclude_the_input() {
        assert_eq!(alphas(4, true), [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(alphas(4, false), [1.0]);
    }
}
