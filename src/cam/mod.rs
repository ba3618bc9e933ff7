//! Class activation maps. A method defines only its weighted activations for a batch of path
//! points ([`CamMethod`]: from the activations, their gradients, or re-runs of the head);
//! [`method`] is the table of methods (each in its own file under `cam/method/`), [`integrate`]
//! owns the path and its quadrature, [`principal`] the first principal component (Eigen-CAM and
//! eigen-smoothing), and the [`Explainer`](crate::Explainer) the passes and sums over them, so
//! every CAM method also has an integrated variant.

pub mod aug_smooth;
pub mod fullgrad;
pub mod integrate;
pub mod method;
pub mod noise_tunnel;
pub mod principal;
pub mod random;
pub mod scaled;
mod weights;

use burn::tensor::{Tensor, activation};

pub use integrate::{Quadrature, alphas};
pub use method::{Compute, METHODS, Method, MethodInfo};
pub use weights::{CamInputs, CamMethod, HeadScores, Projection};

use crate::error::Result;
use crate::onnx::host_values;

/// `sum_b w_b * relu(sum_k weighted_k)` over a batch of path points (with `eigen_smooth`, or
/// for a method that always [projects](CamMethod::projection), their projection instead of
/// their channel sum), as a `[1, 1, h, w]` tensor still on
/// the device: one path chunk's share of a (possibly integrated) CAM map. `point_weights`
/// (`[B, 1, 1, 1]`, the quadrature's) default to 1.
pub fn cam_map(
    method: &dyn CamMethod,
    inputs: &CamInputs,
    eigen_smooth: bool,
    point_weights: Option<&Tensor<4>>,
) -> Result<Tensor<4>> {
    let smooth = eigen_smooth && method.takes_eigen_smooth();
    let projection = method
        .projection()
        .or(smooth.then_some(Projection::Principal));
    let per_point = match projection {
        Some(Projection::Principal) => principal::project(method.weighted(inputs)?)?,
        Some(Projection::KernelSigmoid) => principal::project_kernel(method.weighted(inputs)?)?,
        None => match method.channel_weights(inputs)? {
            Some(w) => weights::channel_sum(w, inputs.activations),
            None => method.weighted(inputs)?.sum_dim(1),
        },
    };
    let maps = activation::relu(per_point);
    Ok(match point_weights {
        Some(w) => maps.mul(w.clone()),
        None => maps,
    }
    .sum_dim(0))
}

/// A 2-D map, row-major.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
