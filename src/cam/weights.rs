//! What a CAM method defines: its per-step channel (or element) weights.

use burn::tensor::Tensor;

/// A CAM method: how to weight the activation channels from activations and gradients. Its
/// name and description live in its row of the [method table](super::method::METHODS).
pub trait CamMethod: Sync {
    /// Weights broadcastable against activations `[B, K, H, W]`: per channel `[B, K, 1, 1]`
    /// or per element `[B, K, H, W]`. The map is then `relu(sum_k weights * A)`.
    fn weights(&self, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4>;
}
