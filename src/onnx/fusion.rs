//! Operator fusion on the CPU backend: a convolution absorbs the zero `Pad` before it, and the
//! residual `Add` and the activation after it, so the intermediate tensors are never written
//! out and read back. The graph is not rewritten: the runner fuses a group of adjacent nodes only
//! when none of the tensors inside the group is needed elsewhere (read by another node, kept for
//! the caller, the graph's output, or past the end of the range being run), and falls back to
//! running the nodes one by one otherwise. Loading a model runs unfused, so every tensor keeps
//! its name and shape for `layers` and `--layer`.

use std::ops::Range;

use super::graph::{Env, Graph};
use super::ops::{Epilogue, OpResult, OrNoGradient};
use super::value::Value;
use crate::kernels::activation::Activation;

/// A group of adjacent nodes to run as one convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The `Pad` node folded into the convolution's padding.
    pub pad: Option<usize>,
    /// The convolution.
    pub conv: usize,
    /// The `Add` node and the name of its other (residual) input.
    pub add: Option<(usize, String)>,
    /// The activation node.
    pub activation: Option<(usize, Activation)>,
}

impl Plan {
    /// The first node of the group.
    pub fn first(&self) -> usize {
        self.pad.unwrap_or(self.conv)
    }

    /// The last node of the group: its output is the group's output.
    pub fn last(&self) -> usize {
        self.activation
            .map(|a| a.0)
            .or(self.add.as_ref().map(|a| a.0))
            .unwrap_or(self.conv)
    }

    /// `Pad+Conv+Add+Relu`-style name for profiles.
    pub fn label(&self, graph: &Graph) -> String {
        (self.first()..=self.last())
            .map(|i| graph.nodes[i].op_type.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// Whether the output of node `i` may stay inside a fused group ending at node `i + 1`:
/// read by that node only, not kept, not the graph's output, and `i + 1` within `range`.
pub(super) fn internal(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> bool {
    let name = &graph.nodes[i].output;
    i + 1 < range.end
        && graph.readers.get(name) == Some(&1)
        && graph.nodes[i + 1].inputs.iter().any(|n| n == name)
        && name != &graph.output
        && !keep.contains(&name.as_str())
}

/// The activation node right after node `i`, within `range`, that reads its output, where
/// that output goes nowhere else (so it need not be kept): a fused group's last node, or the
/// affine stem's activation, applied as the path's points are made
/// ([`along_on_host`](super::path::along_on_host)).
pub fn activation_after(
    graph: &Graph,
    i: usize,
    range: &Range<usize>,
    keep: &[&str],
) -> Option<(usize, Activation)> {
    if !internal(graph, i, range, keep)
        || graph.nodes[i + 1].inputs.first() != Some(&graph.nodes[i].output)
    {
        return None;
    }
    match graph.nodes[i + 1].op.epilogue()? {
        Epilogue::Activation(a) => Some((i + 1, a)),
        Epilogue::Add => None,
    }
}

/// The fusion group starting at node `i`, if there is one worth running.
pub fn plan(
    graph: &Graph,
    i: usize,
    range: &Range<usize>,
    keep: &[&str],
    env: &Env,
) -> Option<Plan> {
    let plan = group(graph, i, range, keep)?;
    if plan.pad.is_none() && plan.add.is_none() && plan.activation.is_none() {
        return None;
    }
    let input = graph.peek(env, input_name(graph, &plan)?)?;
    let pads = pad_pairs(graph, env, &plan, input)?;
    let residual = match &plan.add {
        Some((_, name)) => Some(graph.peek(env, name)?),
        None => None,
    };
    graph.nodes[plan.conv]
        .op
        .fusable(input, pads, residual)
        .then_some(plan)
}

/// The nodes of a group starting at node `i`: a convolution, with the `Pad` before it and the
/// residual `Add` and activation after it where the tensors between them go nowhere else.
/// Whether the `Pad` pads with zeros only, and the group runs fused, is the caller's to check.
pub(crate) fn group(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> Option<Plan> {
    let is_conv = |j: usize| graph.nodes.get(j).is_some_and(|n| n.op_type == "Conv");
    let (pad, conv) = if is_conv(i) {
        (None, i)
    } else if is_conv(i + 1)
        && internal(graph, i, range, keep)
        && graph.nodes[i + 1].inputs.first() == Some(&graph.nodes[i].output)
    {
        (Some(i), i + 1)
    } else {
        return None;
    };
    let mut out = conv;
    let mut add = None;
    if internal(graph, out, range, keep)
        && graph.nodes[out + 1].op.epilogue() == Some(Epilogue::Add)
    {
        let node = &graph.nodes[out + 1];
        let mine = &graph.nodes[out].output;
        if let [a, b] = node.inputs.as_slice()
            && (a == mine) != (b == mine)
        {
            let other = if a == mine { b } else { a };
            add = Some((out + 1, other.clone()));
            out += 1;
        }
    }
    let activation = activation_after(graph, out, range, keep);
    Some(Plan {
        pad,
        conv,
        add,
        activation,
    })
}

/// The name of the tensor a group reads (its `Pad`'s input where it has one).
pub fn input_name<'g>(graph: &'g Graph, plan: &Plan) -> Option<&'g str> {
    graph.nodes[plan.first()].inputs.first().map(String::as_str)
}

/// The zero padding a group's `Pad` adds, per spatial axis (none without a `Pad`), if it pads
/// with zeros only. `input` is a 4-D float tensor standing in for the `Pad`'s input: only its
/// rank and kind are read (in a chain, the input of a later group is not computed yet).
pub fn pad_pairs(
    graph: &Graph,
    env: &Env,
    plan: &Plan,
    input: &Value,
) -> Option<[(usize, usize); 2]> {
    let Some(p) = plan.pad else {
        return Some([(0, 0); 2]);
    };
    let inputs: Vec<Option<&Value>> = graph.nodes[p]
        .inputs
        .iter()
        .enumerate()
        .map(|(j, n)| {
            if j == 0 {
                Some(input)
            } else {
                graph.peek(env, n)
            }
        })
        .collect();
    graph.nodes[p].op.zero_spatial_pad(&inputs)
}

/// A fused group's convolution as its reverse step reads it.
pub struct FusedConv<'a> {
    /// The name of the group's input (the `Pad`'s where one is fused).
    pub input: &'a str,
    /// The convolution's inputs, with that one first.
    pub inputs: Vec<Option<&'a Value>>,
    /// The fused zero padding.
    pub pad: [(usize, usize); 2],
}

impl<'a> FusedConv<'a> {
    /// `plan`'s convolution, reading `env`.
    pub fn of(graph: &'a Graph, env: &'a Env, plan: &Plan) -> OpResult<Self> {
        let conv = &graph.nodes[plan.conv];
        let mut inputs: Vec<Option<&Value>> =
            conv.inputs.iter().map(|n| graph.value(env, n)).collect();
        let mut input = conv.inputs.first().or_no_gradient()?.as_str();
        let mut pad = [(0, 0); 2];
        if let Some(p) = plan.pad {
            let pad_node = &graph.nodes[p];
            input = pad_node.inputs.first().or_no_gradient()?.as_str();
            let pad_inputs: Vec<Option<&Value>> = pad_node
                .inputs
                .iter()
                .map(|n| graph.value(env, n))
                .collect();
            pad = pad_node.op.zero_spatial_pad(&pad_inputs).or_no_gradient()?;
            inputs[0] = graph.value(env, input);
        }
        Ok(Self { input, inputs, pad })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_bounds_and_labels_follow_the_nodes() {
        let plan = Plan {
            pad: Some(3),
            conv: 4,
            add: Some((5, "r".into())),
            activation: Some((6, Activation::Relu)),
        };
        assert_eq!((plan.first(), plan.last()), (3, 6));
        let plain = Plan {
            pad: None,
            conv: 4,
            add: None,
            activation: Some((5, Activation::Clip(0.0, 6.0))),
        };
        assert_eq!((plain.first(), plain.last()), (4, 5));
    }
}
