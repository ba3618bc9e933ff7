//! Class activation maps. A method defines only its per-step channel (or element) weights from
//! activations and gradients ([`CamMethod`]); [`method`] is the table of methods (each in its
//! own file under `cam/method/`), [`integrate`]
//! owns the path, and the [`Explainer`](crate::Explainer) the passes and sums over it, so
//! every CAM method also has an integrated variant.

pub mod integrate;
pub mod method;
mod weights;

use burn::tensor::{Tensor, activation};

pub use integrate::alphas;
pub use method::{Compute, METHODS, Method, MethodInfo};
pub use weights::CamMethod;

use crate::error::Result;
use crate::onnx::host_values;

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
