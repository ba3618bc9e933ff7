//! Finer-CAM (Zhang et al., CVPR 2025), as pytorch-grad-cam's `FinerCAM` computes it by
//! default: Grad-CAM of the target's weighted difference with the three classes whose logits at
//! the photo are nearest to its own, `sum_j p_j (S_c - S_j) / sum_j p_j` (`alpha = 1`,
//! `p = softmax(S)`, differentiated too), so the map shows what tells the class apart from its
//! look-alikes.

use burn::tensor::Tensor;

use super::gradcam::GradCam;
use crate::cam::weights::{CamInputs, CamMethod};
use crate::error::Result;
use crate::onnx::objective::{Objective, finer_comparisons};

/// pytorch-grad-cam's default comparison strength.
const ALPHA: f32 = 1.0;

/// Finer-CAM: Grad-CAM's weights on the gradient of Finer's objective.
pub struct FinerCam;

impl CamMethod for FinerCam {
    fn weighted(&self, inputs: &CamInputs) -> Result<Tensor<4>> {
        GradCam.weighted(inputs)
    }

    fn compares_classes(&self) -> bool {
        true
    }

    fn objective(&self, target: usize, logits: &[f32]) -> Objective {
        Objective::Finer {
            class: target,
            comparisons: finer_comparisons(logits, target),
            alpha: ALPHA,
        }
    }
}
