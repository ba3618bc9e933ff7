//! Class activation maps. A method defines only its per-step channel (or element) weights from
//! activations and gradients ([`CamMethod`]); [`method`] is the table of methods, [`integrate`]
//! owns the path, and the [`Explainer`](crate::Explainer) the passes and sums over it, so
//! every CAM method also has an integrated variant.

mod gradcam;
mod gradcampp;
pub mod integrate;
mod layercam;
pub mod method;
mod xgradcam;

use burn::tensor::{Tensor, activation};

pub use gradcam::GradCam;
pub use gradcampp::GradCamPlusPlus;
pub use integrate::{along, alphas, path_points};
pub use layercam::LayerCam;
pub use method::{Compute, METHODS, Method, MethodInfo};
pub use xgradcam::XGradCam;

use crate::error::Result;
use crate::onnx::host_values;

/// A CAM method: how to weight the activation channels from activations and gradients.
pub trait CamMethod: Sync {
    /// Short name used on the command line and in JSON.
    fn name(&self) -> &'static str;
    /// Weights broadcastable against activations `[B, K, H, W]`: per channel `[B, K, 1, 1]`
    /// or per element `[B, K, H, W]`. The map is then `relu(sum_k weights * A)`.
    fn weights(&self, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4>;
}

/// `sum_b relu(sum_k w_k * A_k)` over a batch of activations and their gradients, as a
/// `[1, 1, h, w]` tensor still on the device: one path chunk's share of a (possibly integrated)
/// CAM map.
pub fn cam_map(method: &dyn CamMethod, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4> {
    let weights = method.weights(activations.clone(), gradients);
    activation::relu(weights.mul(activations).sum_dim(1)).sum_dim(0)
}

/// A 2-D map, row-major.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CamMap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` values, row-major.
    pub values: Vec<f32>,
}

impl CamMap {
    /// Reads a `[1, 1, H, W]` tensor back to the host.
    pub fn from_tensor(t: Tensor<4>) -> Result<Self> {
        let [_, _, height, width] = t.dims();
        Ok(Self {
            height,
            width,
            values: host_values(t)?,
        })
    }
}
