//! Running a [`Graph`]: node by node, reading and writing an [`Env`] of values, freeing each
//! tensor after its last reader, checking the live values against the budget, and running the
//! convolution groups [`fusion`](super::fusion) plans as one kernel call. A run that keeps
//! every value returns its [`Step`]s, for the reverse pass ([`backprop`](super::backprop)).

use std::collections::HashSet;
use std::ops::{Range, RangeInclusive};

use super::attention;
use super::chain::{self, Chain};
use super::fusion::{self, Plan};
use super::graph::{Env, Graph, Node};
use super::ops::Fusion;
use super::value::Value;
use crate::error::{OpError, Result};
use crate::kernels::par::threads;

/// A callback that sees each node and the value it produced.
pub type Observer<'a> = dyn FnMut(&Node, &Value) + 'a;

/// One step of a forward pass: a node alone, or a fused group.
#[derive(Clone, Debug)]
pub enum Step {
    /// Node `i` on its own.
    Node(usize),
    /// A convolution with the nodes fused into it.
    Fused(Plan),
}

impl Step {
    /// Its first and last node: the last one's output is the step's.
    pub fn span(&self) -> (usize, usize) {
        match self {
            Step::Node(i) => (*i, *i),
            Step::Fused(plan) => (plan.first(), plan.last()),
        }
    }

    /// `Conv+Add+Relu`-style name for profiles.
    pub fn label(&self, graph: &Graph) -> String {
        match self {
            Step::Node(i) => graph.nodes[*i].op_type.clone(),
            Step::Fused(plan) => plan.label(graph),
        }
    }
}

/// Runs `range` of the nodes, reading and writing `env`. Tensors are dropped after their last
/// reader unless they are named in `keep`. On the CPU backend, convolutions run fused with their
/// neighbours where nothing else needs the tensors in between (see [`fusion`]). `batch` is the
/// number of images the run computes: every tensor may hold [`budget`](crate::budget)'s limit
/// times that many values.
pub fn run(
    graph: &Graph,
    env: &mut Env,
    range: Range<usize>,
    keep: &[&str],
    batch: usize,
) -> Result<()> {
    let exec = Exec {
        graph,
        keep,
        retain: false,
        fuse: true,
    };
    exec.steps(env, range, batch, None)
}

/// Runs `range` of the graph like [`run`], fused alike, but keeps every value in `env` and
/// returns the steps it took, for a reverse pass over them. The values named in `taps` are not
/// fused away (each is some step's output), so the reverse pass can hand out their gradients.
pub fn run_retaining(
    graph: &Graph,
    env: &mut Env,
    range: Range<usize>,
    taps: &[&str],
    batch: usize,
) -> Result<Vec<Step>> {
    retaining(graph, env, range, (taps, true), batch)
}

/// Runs `range` node by node, without fusion, keeping every value in `env`: each node's
/// inputs and output are there for a reverse pass that needs more than the gradients (the
/// Hessian-vector product, [`hessian`](super::hessian)). Returns the steps (all
/// [`Step::Node`]).
pub fn run_retaining_unfused(
    graph: &Graph,
    env: &mut Env,
    range: Range<usize>,
    batch: usize,
) -> Result<Vec<Step>> {
    retaining(graph, env, range, (&[], false), batch)
}

/// A run that keeps every value and returns its steps: `keep` never fused away, fused where
/// `fuse` says.
fn retaining(
    graph: &Graph,
    env: &mut Env,
    range: Range<usize>,
    (keep, fuse): (&[&str], bool),
    batch: usize,
) -> Result<Vec<Step>> {
    let exec = Exec {
        graph,
        keep,
        retain: true,
        fuse,
    };
    let mut steps = Vec::new();
    exec.steps(env, range, batch, Some(&mut steps))?;
    Ok(steps)
}

/// Like [`run`] without fusion, calling `observe` with each node and its output.
pub fn run_observed(
    graph: &Graph,
    env: &mut Env,
    range: Range<usize>,
    keep: &[&str],
    batch: usize,
    observe: &mut Observer<'_>,
) -> Result<()> {
    let exec = Exec {
        graph,
        keep,
        retain: false,
        fuse: false,
    };
    crate::budget::with_batch(batch, || {
        for i in range {
            exec.node(env, i, Some(observe))?;
        }
        Ok(())
    })
}

/// One run's settings over a graph.
struct Exec<'a> {
    graph: &'a Graph,
    /// Tensors the caller takes afterwards: never freed.
    keep: &'a [&'a str],
    /// Keep every value (for a reverse pass).
    retain: bool,
    /// Run convolutions fused with their neighbours where [`fusion`] plans it.
    fuse: bool,
}

impl Exec<'_> {
    /// Runs `range`; with `steps`, each step is recorded.
    fn steps(
        &self,
        env: &mut Env,
        range: Range<usize>,
        batch: usize,
        mut steps: Option<&mut Vec<Step>>,
    ) -> Result<()> {
        crate::budget::with_batch(batch, || {
            let mut i = range.start;
            // Nodes run ahead of their turn (see `fusion::Links::between`).
            let mut done = HashSet::new();
            while i < range.end {
                if done.remove(&i) {
                    i += 1;
                    continue;
                }
                // An inverted bottleneck runs as one kernel, an image per thread: in runs that
                // keep nothing for a reverse pass, on batches that fill the threads.
                let links = (self.fuse && !self.retain && batch >= threads())
                    .then(|| chain::links(self.graph, i, &range, self.keep, env))
                    .flatten();
                if let Some(links) = links {
                    let ahead = |nodes: &[usize], done: &mut HashSet<usize>, env: &mut Env| {
                        for &j in nodes {
                            if done.insert(j) {
                                self.node(env, j, None)?;
                            }
                        }
                        Ok::<(), crate::error::Error>(())
                    };
                    ahead(&links.between[0], &mut done, env)?;
                    if let Some(chain) = chain::bottleneck(self.graph, env, links) {
                        // Nothing to record: chains run only where no step is kept.
                        debug_assert!(steps.is_none());
                        ahead(&chain.between, &mut done, env)?;
                        self.bottleneck(env, &chain)?;
                        done.retain(|&j| j > chain.last());
                        i = chain.last() + 1;
                        continue;
                    }
                }
                // Attention's three nodes as one kernel, in runs that keep nothing.
                let heads = (self.fuse && !self.retain && steps.is_none())
                    .then(|| attention::plan(self.graph, i, &range, self.keep))
                    .flatten();
                if let Some(plan) = heads
                    && self.attention(env, &plan)?
                {
                    i = plan.product + 1;
                    continue;
                }
                let plan = self
                    .fuse
                    .then(|| fusion::plan(self.graph, i, &range, self.keep, env))
                    .flatten();
                let step = if let Some(plan) = plan {
                    self.fused(env, &plan)?;
                    i = plan.last() + 1;
                    Step::Fused(plan)
                } else {
                    self.node(env, i, None)?;
                    i += 1;
                    Step::Node(i - 1)
                };
                if let Some(steps) = steps.as_deref_mut() {
                    steps.push(step);
                }
            }
            Ok(())
        })
    }

    /// The value of input `name` of a group of nodes whose last node is `last`: moved out of
    /// `env` when no node after the group reads it (so the op owns it alone) and the run does
    /// not retain every value, else shared.
    fn input_value(
        &self,
        env: &mut Env,
        name: &str,
        last: usize,
        more_reads_in_group: bool,
    ) -> Option<Value> {
        let g = self.graph;
        let value = if self.last_read(name, last) && !more_reads_in_group {
            env.remove(name)
        } else {
            env.get(name).cloned()
        };
        value.or_else(|| g.constants.get(name).cloned())
    }

    /// Whether `name` is read for the last time by a group ending at node `last` (and is not
    /// the output, kept, or retained).
    fn last_read(&self, name: &str, last: usize) -> bool {
        let g = self.graph;
        !self.retain
            && g.last_use.get(name).is_some_and(|&l| l <= last)
            && name != g.output
            && !self.keep.contains(&name)
    }

    /// How many times the nodes `nodes` read `name`.
    fn reads(&self, nodes: RangeInclusive<usize>, name: &str) -> usize {
        nodes
            .flat_map(|j| self.graph.nodes[j].inputs.iter())
            .filter(|n| *n == name)
            .count()
    }

    /// Drops from `env` the inputs of `nodes` that no node after the last reads.
    fn free_last_reads(&self, env: &mut Env, nodes: RangeInclusive<usize>) {
        let last = *nodes.end();
        for j in nodes {
            for name in &self.graph.nodes[j].inputs {
                if self.last_read(name, last) {
                    env.remove(name);
                }
            }
        }
    }

    /// Runs node `i` alone.
    fn node(&self, env: &mut Env, i: usize, observe: Option<&mut Observer<'_>>) -> Result<()> {
        let g = self.graph;
        let node = &g.nodes[i];
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (j, name) in node.inputs.iter().enumerate() {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let again = node.inputs[j + 1..].contains(name);
            let value = self
                .input_value(env, name, i, again)
                .ok_or_else(|| g.bad(i, unproduced(name)))?;
            inputs.push(Some(value));
        }
        let start = g.profiler.now();
        let out = node.op.run(&mut inputs).map_err(|e| g.bad(i, e))?;
        check_not_empty(&out).map_err(|e| g.bad(i, e))?;
        if start.is_some() {
            g.sync()?;
            g.profiler.add_op(&node.op_type, &node.name, start);
        }
        drop(inputs);
        if let Some(observe) = observe {
            observe(node, &out);
        }
        env.insert(node.output.clone(), out);
        self.check_live(env, i)
    }

    /// Refuses to go on when the values alive in `env` after node `i` exceed the budget.
    fn check_live(&self, env: &Env, i: usize) -> Result<()> {
        let live = env.values().fold(0usize, |n, v| {
            let count = match v {
                Value::Float(f) => f.tensor.dims().iter().product(),
                Value::Int(a) => a.len(),
            };
            n.saturating_add(count)
        });
        crate::budget::check_live(live).map_err(|e| self.graph.bad(i, e.into()))
    }

    /// Runs a fusion group as one convolution; its output takes the last node's name.
    fn fused(&self, env: &mut Env, plan: &Plan) -> Result<()> {
        let g = self.graph;
        let last = plan.last();
        let conv = &g.nodes[plan.conv];
        // Every input name the group reads from outside itself, counted, so a tensor read twice
        // (say as the convolution's input and as the residual) is shared, not moved.
        let group_reads = |name: &str| self.reads(plan.first()..=last, name);
        let missing = |j: usize, name: &str| g.bad(j, unproduced(name));
        let mut inputs = Vec::with_capacity(conv.inputs.len());
        for (j, name) in conv.inputs.iter().enumerate() {
            let name = match (j, plan.pad) {
                (0, Some(p)) => &g.nodes[p].inputs[0],
                _ => name,
            };
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let shared = group_reads(name) > 1;
            let v = self.input_value(env, name, last, shared);
            inputs.push(Some(v.ok_or_else(|| missing(plan.conv, name))?));
        }
        let mut fusion = Fusion {
            pad: [(0, 0); 2],
            residual: None,
            activation: plan.activation.map(|a| a.1),
        };
        if let Some(p) = plan.pad {
            let peeked: Vec<Option<&Value>> = g.nodes[p]
                .inputs
                .iter()
                .enumerate()
                .map(|(j, n)| match j {
                    0 => inputs[0].as_ref(),
                    _ => g.peek(env, n),
                })
                .collect();
            fusion.pad = g.nodes[p].op.zero_spatial_pad(&peeked).ok_or_else(|| {
                let changed = "the padding changed between planning and running";
                g.bad(p, OpError::Graph(changed.into()))
            })?;
        }
        if let Some((a, name)) = &plan.add {
            let shared = group_reads(name) > 1;
            let v = self.input_value(env, name, last, shared);
            fusion.residual = Some(v.ok_or_else(|| missing(*a, name))?);
        }
        // The inputs only the group read are gone from `env` now.
        self.free_last_reads(env, plan.first()..=last);
        let start = g.profiler.now();
        let out = conv
            .op
            .run_fused(&mut inputs, fusion)
            .map_err(|e| g.bad(plan.conv, e))?;
        if start.is_some() {
            g.sync()?;
            let first = &g.nodes[plan.first()].name;
            g.profiler.add_op(&plan.label(g), first, start);
        }
        env.insert(g.nodes[last].output.clone(), out);
        self.check_live(env, last)
    }
}

impl Exec<'_> {
    /// Runs an inverted bottleneck ([`fusion::bottleneck`]) as one kernel call on the host;
    /// its output takes the last node's name.
    /// Runs attention's nodes (`plan`) as one kernel on the host ([`attention::run`]);
    /// `false` where the operands do not fit it (nothing was run).
    fn attention(&self, env: &mut Env, plan: &attention::Plan) -> Result<bool> {
        let g = self.graph;
        let float = |name: &str| match g.peek(env, name) {
            Some(Value::Float(f)) => Some(f),
            _ => None,
        };
        let (scores, product) = (&g.nodes[plan.scores], &g.nodes[plan.product]);
        let (Some(a), Some(b), Some(v)) = (
            float(&scores.inputs[0]),
            float(&scores.inputs[1]),
            float(&product.inputs[1]),
        ) else {
            return Ok(false);
        };
        let Some(terms) = (plan.terms.iter())
            .map(|(_, c, name)| Some((*c, float(name)?)))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(false);
        };
        let start = g.profiler.now();
        let axis = g.nodes[plan.softmax].op.softmax_axis();
        let Some(out) = attention::run(a, b, v, &terms, axis) else {
            return Ok(false);
        };
        self.free_last_reads(env, plan.scores..=plan.product);
        if start.is_some() {
            g.sync()?;
            g.profiler.add_op(&plan.label(g), &scores.name, start);
        }
        env.insert(product.output.clone(), Value::Float(out));
        self.check_live(env, plan.product).map(|()| true)
    }

    fn bottleneck(&self, env: &mut Env, chain: &Chain) -> Result<()> {
        let g = self.graph;
        let (first, last) = (chain.first(), chain.last());
        let changed = |j: usize| {
            let changed = "the inverted bottleneck changed between planning and running";
            g.bad(j, OpError::Graph(changed.into()))
        };
        let reads = |name: &str| self.reads(first..=last, name);
        let head = chain.groups().next().ok_or_else(|| changed(first))?;
        let input = fusion::input_name(g, head).ok_or_else(|| changed(first))?;
        let x = self
            .input_value(env, input, last, reads(input) > 1)
            .ok_or_else(|| g.bad(first, unproduced(input)))?;
        let residual = match &chain.project.add {
            Some((a, name)) => Some(
                self.input_value(env, name, last, reads(name) > 1)
                    .ok_or_else(|| g.bad(*a, unproduced(name)))?,
            ),
            None => None,
        };
        let convs = chain.convs(g, env, &x).ok_or_else(|| changed(first))?;
        self.free_last_reads(env, first..=last);
        let start = g.profiler.now();
        let out =
            chain::run(&x, residual.as_ref(), &convs).map_err(|e| g.bad(chain.project.conv, e))?;
        if start.is_some() {
            g.sync()?;
            g.profiler
                .add_op(&chain.label(g), &g.nodes[first].name, start);
        }
        env.insert(g.nodes[last].output.clone(), out);
        self.check_live(env, last)
    }
}

/// The error of an input `name` that no earlier node produced.
fn unproduced(name: &str) -> OpError {
    OpError::Graph(format!("input `{name}` is not produced by an earlier node"))
}

/// Refuses an empty float tensor as an op's output: Burn's ops do not take them, and no CNN
/// computes one (an op that would make one refuses before it runs).
fn check_not_empty(v: &Value) -> std::result::Result<(), OpError> {
    match v {
        Value::Float(f) if f.tensor.dims().contains(&0) => Err(OpError::Unsupported(format!(
            "the output would be an empty tensor (shape {:?}); empty tensors are not supported",
            f.shape()
        ))),
        _ => Ok(()),
    }
}
