//! What a CAM method defines: its weighted activations, from which the map is their channel sum
//! (or their first principal component) through a ReLU.

use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};
use crate::onnx::LayerGradient;
use crate::onnx::objective::Objective;

/// The model again, scoring the target on altered inputs: the rest of the graph after the layer
/// on altered activations (Ablation-CAM's ablated channels), or the whole network on altered
/// images (Score-CAM's masked inputs).
pub trait HeadScores {
    /// The target's logit for each of `activations` (`[n, K, h, w]`), which stand in for path
    /// point `point` of the batch being explained.
    fn scores(&self, point: usize, activations: Tensor<4>) -> Result<Vec<f32>>;

    /// Path point `point` of the batch, as the model's input `[1, C, H, W]`.
    fn image(&self, point: usize) -> Tensor<4>;

    /// The target's logit for each of `images` (`[n, C, H, W]`), through the whole network in
    /// chunks of the explainer's batch.
    fn image_scores(&self, images: Tensor<4>) -> Result<Vec<f32>>;

    /// Images per chunk through the whole network.
    fn chunk(&self) -> usize;

    /// `H·A` for the batch's `activations` (`[B, K, h, w]`): the Hessian of the target's
    /// score with respect to the layer, times the activations (ShapleyCAM's second-order
    /// term), through the rest of the graph.
    fn hessian_product(&self, activations: &Tensor<4>) -> Result<Tensor<4>>;
}

/// A projection of the weighted activations on one direction, instead of their channel sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// The first principal component ([`crate::cam::principal::project`]).
    Principal,
    /// The first kernel principal component, sigmoid kernel
    /// ([`crate::cam::principal::project_kernel`]).
    KernelSigmoid,
}

/// What a method may look at for one batch of path points.
pub struct CamInputs<'a> {
    /// The layer's activations `[B, K, h, w]`.
    pub activations: &'a Tensor<4>,
    /// `dS_c/dA`, the same shape (kept as a box where the reverse pass ended with one);
    /// `None` when no method of the batch uses gradients.
    pub gradients: Option<&'a LayerGradient>,
    /// The rest of the graph, for the target.
    pub head: &'a dyn HeadScores,
    /// The seed of anything random (RandomCAM): the request's, made distinct for each target
    /// and each chunk of path points.
    pub seed: u64,
}

impl CamInputs<'_> {
    /// The gradients, which a method that [uses](CamMethod::uses_gradients) them always gets.
    pub fn gradients(&self) -> Result<Tensor<4>> {
        Ok(self.layer_gradient()?.whole())
    }

    /// The gradients' mean over the plane per channel, `[B, K, 1, 1]` (from a box alone, where
    /// they are one).
    pub fn gradient_means(&self) -> Result<Tensor<4>> {
        Ok(self.layer_gradient()?.channel_means())
    }

    fn layer_gradient(&self) -> Result<&LayerGradient> {
        self.gradients
            .ok_or_else(|| Error::Internal("a gradient method was given no gradients".into()))
    }
}

/// A CAM method: how to weight the layer's activations. Its name and description live in its
/// row of the [method table](super::method::METHODS).
pub trait CamMethod: Sync {
    /// The weighted activations `[B, K, h, w]` (pytorch-grad-cam's `weighted_activations`): the
    /// map of each path point is `relu(sum_k weighted_k)`, or with a
    /// [`CamMethod::projection`] (or eigen-smoothing) `relu` of their projection. By default
    /// the activations times [`CamMethod::channel_weights`].
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        match self.channel_weights(inputs)? {
            Some(weights) => Ok(weigh(weights, inputs.activations)),
            None => Err(Error::Internal(
                "a CAM method defines neither its weighted activations nor its channel weights"
                    .into(),
            )),
        }
    }

    /// The per-channel weights `[B, K, 1, 1]` of a method whose weighted activations are the
    /// activations times them (Grad-CAM and kin): the map is then one product over the
    /// channels, without the weighted activations. `None` for any other method.
    fn channel_weights(&self, _inputs: &CamInputs) -> Result<Option<Tensor<4>>> {
        Ok(None)
    }

    /// Whether the method needs `dS_c/dA` (the head's reverse pass).
    fn uses_gradients(&self) -> bool {
        true
    }

    /// What the gradient is taken of when explaining `target`, given the logits at the photo:
    /// the target's logit (Finer-CAM: its weighted difference with its nearest classes).
    fn objective(&self, target: usize, _logits: &[f32]) -> Objective {
        Objective::Logit(target)
    }

    /// Whether [`CamMethod::objective`] compares the target with other classes of a
    /// classifier (Finer-CAM), which a segmenter's per-pixel scores do not offer.
    fn compares_classes(&self) -> bool {
        false
    }

    /// Whether the map depends on the target at all (Eigen-CAM's does not: one map serves
    /// every target).
    fn uses_target(&self) -> bool {
        true
    }

    /// Whether `--eigen-smooth` applies (pytorch-grad-cam's FEM ignores it).
    fn takes_eigen_smooth(&self) -> bool {
        true
    }

    /// Whether computing the map reads tensors back to the host mid-request (a projection, the
    /// scores of re-runs): a caller that must never block (WebGPU in a browser) cannot run it.
    fn reads_back(&self) -> bool {
        self.projection().is_some()
    }

    /// Whether it runs on Burn's CPU backend only (its computation uses the host kernels).
    fn cpu_only(&self) -> bool {
        false
    }

    /// The projection the map always is instead of the channel sum (Eigen-CAM and kin).
    fn projection(&self) -> Option<Projection> {
        None
    }
}

/// `weights * activations` for per-channel weights computed on the host (`B·K` values, point
/// by point).
pub fn weigh_host(weights: Vec<f32>, activations: &Tensor<4>) -> Tensor<4> {
    let [points, channels, _, _] = activations.dims();
    let weights = Tensor::<4>::from_data(
        TensorData::new(weights, [points, channels, 1, 1]),
        &activations.device(),
    );
    weigh(weights, activations)
}

/// `sum_k weights_k * activations_k` (`[B, 1, h, w]`) for per-channel `[B, K, 1, 1]` weights,
/// as one matrix product per point.
pub fn channel_sum(weights: Tensor<4>, activations: &Tensor<4>) -> Tensor<4> {
    let [points, channels, h, w] = activations.dims();
    let weights = weights.reshape([points, 1, channels]);
    let activations = activations.clone().reshape([points, channels, h * w]);
    weights.matmul(activations).reshape([points, 1, h, w])
}

/// `weights * activations` for per-channel `[B, K, 1, 1]` or per-element weights.
pub fn weigh(weights: Tensor<4>, activations: &Tensor<4>) -> Tensor<4> {
    weights.mul(activations.clone())
}
