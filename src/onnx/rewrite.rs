//! Load-time rewrites of ONNX nodes that igcam cannot run as exported: a batch of 1 baked into
//! Reshape targets, and channel shuffles through rank-5 tensors. Each rewrite yields nodes that
//! compute the same values.

use std::borrow::Cow;
use std::collections::HashMap;

use onnx_ir::{AttributeProto, NodeProto};

use super::proto::HostTensor;

/// The domain of the nodes the rewrites create (never seen in a file: such a node is refused).
pub const INTERNAL_DOMAIN: &str = "igcam.internal";

/// The op type of a fused `Reshape` (to rank > 4) → `Transpose` → `Reshape` chain; inputs are
/// the data, the first and the last target shapes; attributes `perm`, `allowzero`, `allowzero_2`.
pub const RESHAPE_TRANSPOSE_RESHAPE: &str = "ReshapeTransposeReshape";

fn int_attr(node: &NodeProto, name: &str) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(0, |a| a.i)
}

/// The target-shape inputs of a reshaping node, each with its `allowzero`.
fn shape_inputs(node: &NodeProto) -> Vec<(usize, bool)> {
    match (node.domain.as_str(), node.op_type.as_str()) {
        ("" | "ai.onnx", "Reshape") => vec![(1, int_attr(node, "allowzero") != 0)],
        (INTERNAL_DOMAIN, RESHAPE_TRANSPOSE_RESHAPE) => vec![
            (1, int_attr(node, "allowzero") != 0),
            (2, int_attr(node, "allowzero_2") != 0),
        ],
        _ => Vec::new(),
    }
}

/// A copy of a reshaping node whose constant target shapes start with the batch 1, reading new
/// constants whose first entry follows the input's batch instead: -1 (infer it from the
/// input's size) when no other entry is -1 or 0, so the inferred dimension is the batch (the
/// input's first dimension need not be the batch: MobileViT folds it with others); else 0
/// (copy the input's first dimension), except under `allowzero` (PyTorch's `dynamo=True`
/// exporter), where 0 would mean a literal zero. `None` when no target changes. A model whose
/// batch still does not flow is caught at load (see `OnnxModel::batch_breaker`).
pub fn carry_batch(node: &NodeProto, host: &mut HashMap<String, HostTensor>) -> Option<NodeProto> {
    let mut copy: Option<NodeProto> = None;
    for (i, allow_zero) in shape_inputs(node) {
        let Some(shape_name) = node.input.get(i) else {
            continue;
        };
        let Some(HostTensor::Int(shape)) = host.get(shape_name) else {
            continue;
        };
        if shape.ndim() != 1 || shape.len() < 2 || shape[[0]] != 1 {
            continue;
        }
        let mut carried = shape.clone();
        if carried.iter().skip(1).all(|&d| d > 0) {
            carried[[0]] = -1;
        } else if !allow_zero {
            carried[[0]] = 0;
        } else {
            continue;
        }
        let name = format!("{shape_name}#batch");
        host.insert(name.clone(), HostTensor::Int(carried));
        copy.get_or_insert_with(|| node.clone()).input[i] = name;
    }
    copy
}

/// How many nodes (and graph outputs) read each tensor.
fn reader_counts<'a>(nodes: &'a [NodeProto], outputs: &[&'a str]) -> HashMap<&'a str, usize> {
    let mut readers = HashMap::new();
    for name in nodes.iter().flat_map(|n| &n.input).map(String::as_str) {
        *readers.entry(name).or_insert(0) += 1;
    }
    for &o in outputs {
        *readers.entry(o).or_insert(0) += 1;
    }
    readers
}

/// Whether `node` is a default-domain op of type `op`.
fn is(node: &NodeProto, op: &str) -> bool {
    node.op_type == op && (node.domain.is_empty() || node.domain == "ai.onnx")
}

/// `nodes` with each `Reshape` to a constant rank above 4, read only by a `Transpose` read only
/// by a `Reshape`, replaced by one [`RESHAPE_TRANSPOSE_RESHAPE`] node (ShuffleNet's channel
/// shuffle: `[N, C, H, W]` → `[N, g, C/g, H, W]` → swap 1 and 2 → `[N, C, H, W]`), which runs
/// with the axes the permutation keeps together merged. Other nodes are borrowed unchanged.
pub fn fuse_high_rank_shuffles<'a>(
    nodes: &'a [NodeProto],
    outputs: &[&'a str],
    host: &HashMap<String, HostTensor>,
) -> Vec<Cow<'a, NodeProto>> {
    let readers = reader_counts(nodes, outputs);
    let single_reader = |name: &str| readers.get(name) == Some(&1);
    let reader_of = |name: &str| nodes.iter().position(|n| n.input.iter().any(|i| i == name));
    // A constant target shape of more than 4 entries: an initialiser, or a `Constant` node
    // (not yet loaded when this runs).
    let high_rank = |n: &NodeProto| {
        let Some(spec) = n.input.get(1) else {
            return false;
        };
        if let Some(t) = host.get(spec) {
            return matches!(t, HostTensor::Int(a) if a.ndim() == 1 && a.len() > 4);
        }
        nodes
            .iter()
            .find(|c| is(c, "Constant") && c.output.first() == Some(spec))
            .and_then(|c| c.attribute.iter().find(|a| a.name == "value"))
            .and_then(|a| a.t.as_ref())
            .is_some_and(|t| t.dims.len() == 1 && t.dims[0] > 4)
    };
    let mut fused: HashMap<usize, NodeProto> = HashMap::new();
    let mut skipped = vec![false; nodes.len()];
    for (i, first) in nodes.iter().enumerate() {
        if skipped[i] || fused.contains_key(&i) {
            continue;
        }
        if !is(first, "Reshape") || !high_rank(first) || first.output.len() != 1 {
            continue;
        }
        let Some(t) = Some(&first.output[0])
            .filter(|o| single_reader(o))
            .and_then(|o| reader_of(o))
            .filter(|&t| is(&nodes[t], "Transpose") && nodes[t].output.len() == 1)
        else {
            continue;
        };
        let Some(last) = Some(&nodes[t].output[0])
            .filter(|o| single_reader(o))
            .and_then(|o| reader_of(o))
            .filter(|&l| {
                is(&nodes[l], "Reshape") && nodes[l].input.first() == Some(&nodes[t].output[0])
            })
        else {
            continue;
        };
        let (transpose, second) = (&nodes[t], &nodes[last]);
        let mut attrs: Vec<AttributeProto> = transpose
            .attribute
            .iter()
            .filter(|a| a.name == "perm")
            .cloned()
            .collect();
        for (name, from) in [("allowzero", first), ("allowzero_2", second)] {
            let mut a = AttributeProto::new();
            a.name = name.into();
            a.i = int_attr(from, "allowzero");
            attrs.push(a);
        }
        let mut node = NodeProto::new();
        node.name = if second.name.is_empty() {
            second.output[0].clone()
        } else {
            second.name.clone()
        };
        node.domain = INTERNAL_DOMAIN.into();
        node.op_type = RESHAPE_TRANSPOSE_RESHAPE.into();
        node.input = vec![
            first.input[0].clone(),
            first.input[1].clone(),
            second.input.get(1).cloned().unwrap_or_default(),
        ];
        node.output = second.output.clone();
        node.attribute = attrs;
        skipped[i] = true;
        skipped[t] = true;
        fused.insert(last, node);
    }
    nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| !skipped[i])
        .map(|(i, n)| fused.remove(&i).map_or(Cow::Borrowed(n), Cow::Owned))
        .collect()
}
