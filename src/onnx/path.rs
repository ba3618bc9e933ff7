//! The straight path `b + a (x - b)` from a baseline to the photo through the model's input
//! space, and the affine stem that lets the path skip the first nodes: along the path, the
//! output of an affine stem `S` (the first nodes, from the image input up to the first
//! non-affine op: Conv, BatchNormalization, Pad, arithmetic with constants) is
//! `S(b) + a (S(x) - S(b))`, so the stem runs on the two ends only.

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};

use super::graph::Graph;
use super::host;
use super::ops::is_plain_cpu;
use crate::kernels::activation::Activation;

/// The ends of a path, and the affine stem's output at both, computed once per photo.
#[derive(Clone, Debug)]
pub struct PathEnds {
    /// The photo `[1, C, H, W]`.
    pub x: Tensor<4>,
    /// The baseline `[1, C, H, W]`.
    pub b: Tensor<4>,
    /// The stem's output at the baseline, and at the photo minus at the baseline.
    pub(super) stem: Option<(Tensor<4>, Tensor<4>)>,
}

impl PathEnds {
    /// The batch of path points at `alphas`.
    pub fn points(&self, alphas: &[f32]) -> Tensor<4> {
        along(&self.b, &self.x.clone().sub(self.b.clone()), alphas)
    }
}

/// The batch `start + direction * alpha` for the given alphas (`start`, `direction`:
/// `[1, C, H, W]`): points on the line through `start` in `direction`. On the plain CPU device
/// in one pass on the host (Burn's broadcast product and sum wrote the batch twice); the same
/// two roundings either way.
pub fn along(start: &Tensor<4>, direction: &Tensor<4>, alphas: &[f32]) -> Tensor<4> {
    if let Some(points) = along_on_host(start, direction, alphas, None) {
        return points;
    }
    let device = start.device();
    let n = alphas.len();
    let a = Tensor::<4>::from_data(TensorData::new(alphas.to_vec(), [n, 1, 1, 1]), &device);
    start.clone().add(direction.clone().mul(a))
}

/// [`along`] then `activation`, in the same pass, on the plain CPU device; `None` elsewhere.
pub fn along_on_host(
    start: &Tensor<4>,
    direction: &Tensor<4>,
    alphas: &[f32],
    activation: Option<Activation>,
) -> Option<Tensor<4>> {
    let device = start.device();
    if !is_plain_cpu(&device) || direction.dims() != start.dims() || start.dims()[0] != 1 {
        return None;
    }
    let points = host::with_floats(start, |s| {
        host::with_floats(direction, |d| {
            let mut out = Vec::with_capacity(alphas.len() * s.len());
            for &a in alphas {
                let line = s.iter().zip(d).map(|(&s, &d)| s + d * a);
                match activation {
                    Some(f) => out.extend(line.map(|v| f.apply(v))),
                    None => out.extend(line),
                }
            }
            out
        })
    });
    let values = points.ok()?.ok()?;
    let [_, c, h, w] = start.dims();
    Some(host::tensor(values, [alphas.len(), c, h, w], &device))
}

/// The op types a stem may hold: affine in the image and image by image (each image's output
/// from that image alone), so the stem's output for a batch is its output for each image. Other
/// ops are affine too (reshapes, joins, matrix products, average pooling: see
/// [`Operator::affine_in`](super::ops::Operator::affine_in)) but may mix or move the batch axis.
const PER_IMAGE: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Pad",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Identity",
    "Dropout",
];

/// The affine stem of `graph`: the index of its last node and the name of its 4-D output
/// (`shapes`: every node output's batch-1 shape), if the graph starts with one.
pub fn affine_stem(graph: &Graph, shapes: &HashMap<String, Vec<usize>>) -> Option<(usize, String)> {
    let mut current = graph.input.name.as_str();
    let mut end = None;
    for (i, node) in graph.nodes.iter().enumerate() {
        if graph.readers.get(current) != Some(&1) {
            break;
        }
        let Some(at) = node.inputs.iter().position(|n| n == current) else {
            break;
        };
        let others_constant = node
            .inputs
            .iter()
            .enumerate()
            .all(|(j, n)| j == at || n.is_empty() || graph.constants.contains_key(n));
        if !others_constant
            || !PER_IMAGE.contains(&node.op_type.as_str())
            || !node.op.affine_in(at)
            || node.output == graph.output
        {
            break;
        }
        end = Some(i);
        current = &node.output;
    }
    let end = end?;
    (shapes.get(current).map(Vec::len) == Some(4)).then(|| (end, current.to_string()))
}
