//! Operator fusion on the CPU backend: a convolution absorbs the zero `Pad` before it, and the
//! residual `Add` and the activation after it, so the intermediate tensors are never written
//! out and read back. The graph is not rewritten: the runner fuses a group of adjacent nodes only
//! when none of the tensors inside the group is needed elsewhere (read by another node, kept for
//! the caller, the graph's output, or past the end of the range being run), and falls back to
//! running the nodes one by one otherwise. Loading a model runs unfused, so every tensor keeps
//! its name and shape for `layers` and `--layer`.

use std::ops::Range;

use super::graph::{Env, Graph};
use super::ops::{Epilogue, HostConv, OpResult, OrNoGradient, is_plain_cpu};
use super::value::Value;
use crate::kernels::activation::Activation;
use crate::kernels::bottleneck::{Bottleneck, Stage};
use crate::kernels::epilogue::Epilogue as KernelEpilogue;

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
fn internal(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> bool {
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
fn group(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> Option<Plan> {
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

/// A group's convolution on a 4-D input of `dims` (`x` standing in for it: see
/// [`pad_pairs`]), its `Pad` folded in, as the host kernels take it.
fn host_conv<'g>(
    graph: &'g Graph,
    env: &Env,
    plan: &Plan,
    x: &Value,
    dims: [usize; 4],
) -> Option<HostConv<'g>> {
    let pads = pad_pairs(graph, env, plan, x)?;
    graph.nodes[plan.conv].op.host_conv(dims, pads)
}

/// Three fusion groups run as one inverted bottleneck
/// ([`bottleneck`](crate::kernels::bottleneck)): a pointwise expansion (absent in blocks that do
/// not expand), a depthwise convolution and a pointwise projection, each reading only the
/// previous one's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    /// The expansion's group.
    pub expand: Option<Plan>,
    /// The depthwise convolution's group.
    pub depthwise: Plan,
    /// The projection's group (its `Add` the block's residual).
    pub project: Plan,
    /// Nodes between the depthwise group and the projection that are none of theirs (see
    /// [`Links::between`]): run before the chain.
    pub between: Vec<usize>,
}

impl Chain {
    /// The groups in order.
    pub fn groups(&self) -> impl Iterator<Item = &Plan> {
        self.expand.iter().chain([&self.depthwise, &self.project])
    }

    /// The first node.
    pub fn first(&self) -> usize {
        self.groups().next().map_or(0, Plan::first)
    }

    /// The last node: its output is the chain's.
    pub fn last(&self) -> usize {
        self.project.last()
    }

    /// `Conv+Clip > Pad+Conv+Clip > Conv+Add`-style name for profiles.
    pub fn label(&self, graph: &Graph) -> String {
        let groups: Vec<String> = self.groups().map(|p| p.label(graph)).collect();
        groups.join(" > ")
    }

    /// Each group's convolution for the chain's input `x` (4-D, on the host): shapes chained
    /// from `x`'s, weights and bias, each with its activation. `None` if a group's `Pad` is not
    /// a zero padding, or a convolution has no host weights.
    pub fn convs<'g>(
        &self,
        graph: &'g Graph,
        env: &Env,
        x: &Value,
    ) -> Option<Vec<(HostConv<'g>, Option<Activation>)>> {
        let mut dims: [usize; 4] = x.shape().try_into().ok()?;
        let mut convs = Vec::with_capacity(3);
        for plan in self.groups() {
            let conv = host_conv(graph, env, plan, x, dims)?;
            let [oh, ow] = conv.s.output()?;
            dims = [dims[0], conv.s.cout, oh, ow];
            convs.push((conv, plan.activation.map(|a| a.1)));
        }
        Some(convs)
    }
}

/// Two or three fusion groups from node `i` on, each the only reader of the one before's
/// output (which goes nowhere else), and the nodes between them: an inverted bottleneck's
/// nodes, if its convolutions turn out to be of their kinds ([`bottleneck`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Links {
    /// The groups in order.
    pub groups: Vec<Plan>,
    /// `between[k]`: the nodes after group `k` and before group `k + 1`, which read none of
    /// the groups' tensors nor the chain's input or residual; they can run before the chain
    /// (those of the first link must: they may compute the depthwise `Pad`'s widths).
    pub between: Vec<Vec<usize>>,
}

/// The [`Links`] from node `i` on, if there are at least two.
pub fn links(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> Option<Links> {
    let mut groups = vec![group(graph, i, range, keep)?];
    let mut between = Vec::new();
    let input = input_name(graph, &groups[0])?;
    while groups.len() < 3 {
        let last = groups[groups.len() - 1].last();
        let name = &graph.nodes[last].output;
        let Some(at) = (last + 1..range.end).find(|&j| graph.nodes[j].inputs.contains(name)) else {
            break;
        };
        let feeds = graph.readers.get(name) == Some(&1)
            && graph.nodes[at].inputs.first() == Some(name)
            && name != &graph.output
            && !keep.contains(&name.as_str());
        let Some(next) = feeds.then(|| group(graph, at, range, keep)).flatten() else {
            break;
        };
        let residual = next.add.as_ref().map(|(_, r)| r.as_str());
        let clear = (last + 1..at).all(|j| {
            let reads = &graph.nodes[j].inputs;
            !reads
                .iter()
                .any(|n| n == input || Some(n.as_str()) == residual)
        });
        if !clear {
            break;
        }
        between.push((last + 1..at).collect());
        groups.push(next);
    }
    (groups.len() >= 2).then_some(Links { groups, between })
}

/// The inverted bottleneck among `links` (run after the nodes of its first link's `between`),
/// if its convolutions are of their kinds (pointwise, depthwise, pointwise; or depthwise,
/// pointwise), run on the host, only the projection adds a residual, and that residual has
/// the output's shape. See [`Chain`].
pub fn bottleneck(graph: &Graph, env: &Env, links: Links) -> Option<Chain> {
    let Links {
        mut groups,
        mut between,
    } = links;
    let x = graph.peek(env, input_name(graph, &groups[0])?)?;
    let Value::Float(xf) = x else {
        return None;
    };
    if xf.rank != 4 || !is_plain_cpu(&xf.tensor.device()) {
        return None;
    }
    let dims: [usize; 4] = xf.shape().try_into().ok()?;
    let expands = !host_conv(graph, env, &groups[0], x, dims)?.s.is_depthwise();
    let count = if expands { 3 } else { 2 };
    groups.truncate(count);
    between.truncate(count - 1);
    let (project, depthwise) = (groups.pop()?, groups.pop()?);
    let chain = Chain {
        expand: groups.pop(),
        depthwise,
        project,
        between: between.into_iter().skip(1).flatten().collect(),
    };
    let convs = chain.convs(graph, env, x)?;
    let middle_plain = chain
        .groups()
        .take(convs.len() - 1)
        .all(|p| p.add.is_none());
    if !block(&convs)?.fits(dims[0]) || !middle_plain || chain.project.pad.is_some() {
        return None;
    }
    if let Some((_, name)) = &chain.project.add {
        let (p, _) = convs.last()?;
        let [oh, ow] = p.s.output()?;
        let want = vec![dims[0], p.s.cout, oh, ow];
        match graph.peek(env, name)? {
            Value::Float(r) if r.shape() == want && is_plain_cpu(&r.tensor.device()) => {}
            _ => return None,
        }
    }
    Some(chain)
}

/// The kernel's [`Bottleneck`] of a chain's convolutions ([`Chain::convs`]): two (depthwise,
/// projection) or three; no residual yet. Whether they are of their kinds is
/// [`Bottleneck::fits`]'s to say.
pub fn block<'c>(convs: &[(HostConv<'c>, Option<Activation>)]) -> Option<Bottleneck<'c>> {
    let stage = |(c, activation): &(HostConv<'c>, Option<Activation>)| Stage {
        s: c.s,
        w: c.weights,
        epilogue: KernelEpilogue {
            bias: c.bias,
            residual: None,
            activation: *activation,
        },
    };
    let (expand, depthwise, project) = match convs {
        [e, d, p] => (Some(stage(e)), stage(d), stage(p)),
        [d, p] => (None, stage(d), stage(p)),
        _ => return None,
    };
    Some(Bottleneck {
        expand,
        depthwise,
        project,
    })
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
