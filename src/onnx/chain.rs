//! Three fusion groups run as one inverted bottleneck on the CPU backend
//! ([`bottleneck`](crate::kernels::bottleneck)): a pointwise expansion (absent in blocks that
//! do not expand), a depthwise convolution and a pointwise projection, each reading only the
//! previous one's output. [`links`] finds the groups and the nodes between them (which the
//! runner runs ahead), [`bottleneck`] checks the convolutions' kinds on the actual input, and
//! [`run`] makes the kernel call.

use std::ops::Range;

use super::fusion::{Plan, group, input_name, pad_pairs};
use super::graph::{Env, Graph};
use super::host;
use super::ops::{HostConv, is_plain_cpu};
use super::value::{FloatValue, Value};
use crate::error::OpError;
use crate::kernels::activation::Activation;
use crate::kernels::bottleneck::{self as kernel, Bottleneck, Stage};
use crate::kernels::epilogue::Epilogue as KernelEpilogue;

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

/// The tensor `plan` reads and its dims, if it is a 4-D float tensor on the plain CPU (where a
/// chain can run).
fn host_input<'e>(graph: &'e Graph, env: &'e Env, plan: &Plan) -> Option<(&'e Value, [usize; 4])> {
    let x = graph.peek(env, input_name(graph, plan)?)?;
    match x {
        Value::Float(f) if f.rank == 4 && is_plain_cpu(&f.tensor.device()) => {
            Some((x, f.shape().try_into().ok()?))
        }
        _ => None,
    }
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
    /// `between[k]`: the nodes after group `k` and before group `k + 1`, which read no tensor
    /// the groups' nodes read (so running them first frees none of those); they can run
    /// before the chain (those of the first link must: they may compute the depthwise `Pad`'s
    /// widths).
    pub between: Vec<Vec<usize>>,
}

/// The [`Links`] from node `i` on, if there are at least two and the first group reads a
/// 4-D float tensor on the plain CPU (where the chain can run: elsewhere no node runs ahead).
pub fn links(
    graph: &Graph,
    i: usize,
    range: &Range<usize>,
    keep: &[&str],
    env: &Env,
) -> Option<Links> {
    let mut groups = vec![group(graph, i, range, keep)?];
    host_input(graph, env, &groups[0])?;
    // The tensors the groups' nodes read: no node run ahead may read one (it could be its
    // last reader, and free it).
    let reads = |plan: &Plan| -> Vec<&str> {
        (plan.first()..=plan.last())
            .flat_map(|j| graph.nodes[j].inputs.iter().map(String::as_str))
            .collect()
    };
    let mut read: Vec<&str> = reads(&groups[0]);
    let mut between: Vec<Vec<usize>> = Vec::new();
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
        let mut read_too = read.clone();
        read_too.extend(reads(&next));
        let ahead: Vec<usize> = (last + 1..at).collect();
        let clear = between.iter().flatten().chain(&ahead).all(|&j| {
            !graph.nodes[j]
                .inputs
                .iter()
                .any(|n| read_too.contains(&n.as_str()))
        });
        if !clear {
            break;
        }
        read = read_too;
        between.push(ahead);
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
    let (x, dims) = host_input(graph, env, &groups[0])?;
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

/// Runs a chain's convolutions ([`Chain::convs`]) on `x` with `residual` as one kernel call:
/// both read on the host, the output a new tensor on their device.
pub fn run(
    x: &Value,
    residual: Option<&Value>,
    convs: &[(HostConv, Option<Activation>)],
) -> std::result::Result<Value, OpError> {
    let block = block(convs)
        .ok_or_else(|| OpError::Graph("an inverted bottleneck of 2 or 3 convolutions".into()))?;
    let (Value::Float(xf), Some([oh, ow])) = (x, block.project.s.output()) else {
        return Err(OpError::Graph(
            "an inverted bottleneck's input is not a float tensor".into(),
        ));
    };
    let dims = [xf.shape()[0], block.project.s.cout, oh, ow];
    crate::budget::check_shape(&dims)?;
    let run = |x: &[f32], residual: Option<&[f32]>| {
        let mut block = block;
        block.project.epilogue.residual = residual;
        if !block.fits(dims[0]) {
            return Err(OpError::Graph(
                "an inverted bottleneck whose stages do not chain".into(),
            ));
        }
        Ok(kernel::run(x, dims[0], &block))
    };
    let out = host::with_floats(&xf.tensor, |x| match residual {
        Some(Value::Float(r)) => host::with_floats(&r.tensor, |r| run(x, Some(r)))?,
        Some(Value::Int(_)) => Err(OpError::Graph("an integer residual".into())),
        None => run(x, None),
    })??;
    Ok(Value::Float(FloatValue::nchw(host::tensor(
        out,
        dims,
        &xf.tensor.device(),
    ))))
}
