//! Loading an ONNX graph from bytes and executing it node by node on Burn tensors.

use std::collections::HashMap;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::Device;
use onnx_ir::{Message, ModelProto, NodeProto};

use super::backprop::Step;
use super::external::{self, ExternalData};
use super::fuse::{Fusion, Plan};
use super::ops::{self, BuildContext, Operator};
use super::profile::Profiler;
use super::proto::{Attrs, HostTensor, host_tensor};
use super::value::Value;
use crate::error::{Error, Result};

/// Tensors by name during one forward pass.
pub type Env = HashMap<String, Value>;

/// A callback that sees each node and the value it produced.
pub type Observer<'a> = dyn FnMut(&Node, &Value) + 'a;

/// One executable node.
pub struct Node {
    /// Node name (its first output's name when the node is unnamed).
    pub name: String,
    /// ONNX op type.
    pub op_type: String,
    /// Input tensor names ("" for an absent optional input).
    pub inputs: Vec<String>,
    /// Output tensor name.
    pub output: String,
    pub(crate) op: Box<dyn Operator>,
}

/// The model's image input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Input tensor name.
    pub name: String,
    /// The batch size, when fixed in the model (dim 0).
    pub batch: Option<usize>,
    /// Number of channels (dim 1).
    pub channels: usize,
    /// Height, when fixed in the model.
    pub height: Option<usize>,
    /// Width, when fixed in the model.
    pub width: Option<usize>,
}

/// A parsed, ready-to-run graph.
pub struct Graph {
    /// Nodes in topological (file) order; `Constant` nodes are folded into `constants`.
    pub nodes: Vec<Node>,
    /// Initialisers and constants, on the model's device.
    pub constants: HashMap<String, Value>,
    /// The image input.
    pub input: InputSpec,
    /// Name of the logits output.
    pub output: String,
    /// Index of the last node that reads each tensor, to free memory early.
    last_use: HashMap<String, usize>,
    /// How many node inputs read each tensor (a node reading it twice counts twice).
    pub(crate) readers: HashMap<String, usize>,
    /// The node that produces each tensor.
    producers: HashMap<String, usize>,
    /// Reshapes whose fixed batch of 1 follows the run's batch (see `BuildContext::fixed_batch`).
    pub batch_reshapes: usize,
    /// The device holding the constants.
    device: Device,
    /// Per-op timings, when switched on.
    pub(crate) profiler: Profiler,
}

fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version)
}

fn constant_node(node: &NodeProto) -> std::result::Result<HostTensor, String> {
    let a = Attrs::of(node);
    if let Some(t) = a.tensor("value") {
        return host_tensor(t);
    }
    let attr = node.attribute.first().ok_or("Constant has no value")?;
    match attr.name.as_str() {
        "value_float" => Ok(HostTensor::Float(vec![attr.f], vec![])),
        "value_floats" => Ok(HostTensor::Float(
            attr.floats.clone(),
            vec![attr.floats.len()],
        )),
        "value_int" => Ok(HostTensor::Int(ndarray::arr0(attr.i).into_dyn())),
        "value_ints" => Ok(HostTensor::Int(ndarray::arr1(&attr.ints).into_dyn())),
        other => Err(format!("Constant attribute `{other}` is not supported")),
    }
}

fn input_spec(model: &ModelProto, constants: &HashMap<String, HostTensor>) -> Result<InputSpec> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::OnnxParse("the file holds no graph".into()))?;
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !constants.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(Error::NotClassifier(format!(
            "the graph has {} data inputs",
            inputs.len()
        )));
    };
    let dims: Vec<Option<usize>> = input
        .type_
        .as_ref()
        .map(|t| {
            t.tensor_type()
                .shape
                .dim
                .iter()
                .map(|d| {
                    if d.has_dim_value() && d.dim_value() > 0 {
                        Some(usize::try_from(d.dim_value()).unwrap_or(usize::MAX))
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if dims.len() != 4 {
        return Err(Error::NotClassifier(format!(
            "input `{}` has rank {}, not 4 (NCHW)",
            input.name,
            dims.len()
        )));
    }
    let at_load = [
        1,
        dims[1].unwrap_or(3),
        dims[2].unwrap_or(super::DEFAULT_INPUT_SIZE),
        dims[3].unwrap_or(super::DEFAULT_INPUT_SIZE),
    ];
    crate::budget::check_shape(&at_load).map_err(|msg| Error::Budget {
        what: format!("model input `{}`", input.name),
        msg,
    })?;
    Ok(InputSpec {
        name: input.name.clone(),
        batch: dims[0],
        channels: dims[1].unwrap_or(3),
        height: dims[2],
        width: dims[3],
    })
}

impl Graph {
    /// Parses ONNX bytes and builds every node's operator on `device`.
    pub fn parse(bytes: &[u8], external: &dyn ExternalData, device: &Device) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::OnnxParse("the file is empty".into()));
        }
        let model =
            ModelProto::parse_from_bytes(bytes).map_err(|e| Error::OnnxParse(e.to_string()))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| Error::OnnxParse("the file holds no graph".into()))?;
        if graph.node.is_empty() {
            return Err(Error::OnnxParse("the graph has no nodes".into()));
        }
        let opset = default_opset(&model);
        // Constants stay on the host until every operator is built, so that building never reads
        // the device back (a blocking read is impossible on WebGPU in a browser); then they move
        // to the device once, without a second copy.
        let mut host = HashMap::new();
        for t in &graph.initializer {
            let t = external::resolve(t, external).map_err(Error::TensorData)?;
            host.insert(t.name.clone(), host_tensor(&t).map_err(Error::TensorData)?);
        }
        let input = input_spec(&model, &host)?;
        let output = match graph.output.as_slice() {
            [first, ..] => first.name.clone(),
            [] => return Err(Error::NotClassifier("the graph has no outputs".into())),
        };
        let mut nodes = Vec::new();
        let mut missing = MissingOps::default();
        let mut batch_reshapes = 0;
        // Who produces each tensor: a second producer makes the graph ambiguous.
        let mut produced: HashMap<String, String> =
            HashMap::from([(input.name.clone(), "the model input".to_string())]);
        for node in &graph.node {
            let name = if node.name.is_empty() {
                node.output.first().cloned().unwrap_or_default()
            } else {
                node.name.clone()
            };
            let bad = |msg: String| Error::BadNode {
                op: node.op_type.clone(),
                node: name.clone(),
                msg,
            };
            let out = node
                .output
                .first()
                .cloned()
                .ok_or_else(|| bad("node has no output".into()))?;
            let multi_output = ops::MULTI_OUTPUT.contains(&node.op_type.as_str());
            let computed = if multi_output { node.output.len() } else { 1 };
            for o in node.output.iter().take(computed).filter(|o| !o.is_empty()) {
                if let Some(first) = produced.insert(o.clone(), format!("node `{name}`")) {
                    return Err(bad(format!(
                        "its output `{o}` is also produced by {first}; every tensor needs exactly one producer, so the file is malformed (re-export the model)"
                    )));
                }
            }
            if node.op_type == "Constant" {
                host.insert(out, constant_node(node).map_err(bad)?);
                continue;
            }
            // The legacy exporter stores equal initialisers once and rebuilds the copies with
            // `Identity` nodes: such a copy is a constant too.
            if node.op_type == "Identity"
                && let Some(value) = node.input.first().and_then(|i| host.get(i)).cloned()
            {
                host.insert(out, value);
                continue;
            }
            let domain_ok = node.domain.is_empty() || node.domain == "ai.onnx";
            let mut ctx = BuildContext {
                node,
                opset,
                constants: &host,
                device,
                output: 0,
                // A model exported with a fixed batch of 1 bakes that 1 into its Reshape shapes
                // (`[1, 512]`), which the path's batches of several images cannot pass: such
                // Reshapes put the run's batch there.
                fixed_batch: input.batch == Some(1),
            };
            let built = if domain_ok {
                ops::build(&ctx)
            } else {
                Ok(None)
            };
            let op = match built.map_err(bad)? {
                Some(op) => op,
                None => {
                    let op = if domain_ok {
                        node.op_type.clone()
                    } else {
                        format!("{}::{}", node.domain, node.op_type)
                    };
                    missing.add(op, name);
                    continue;
                }
            };
            if op.follows_batch() {
                batch_reshapes += 1;
            }
            // The other outputs of a multi-output node, one operator each.
            for (i, o) in node.output.iter().enumerate().take(computed).skip(1) {
                if o.is_empty() {
                    continue;
                }
                ctx.output = i;
                let op = ops::build(&ctx).map_err(bad)?.ok_or_else(|| {
                    bad(format!("output {i} of a {} cannot be built", node.op_type))
                })?;
                nodes.push(Node {
                    name: name.clone(),
                    op_type: node.op_type.clone(),
                    inputs: node.input.clone(),
                    output: o.clone(),
                    op,
                });
            }
            nodes.push(Node {
                name,
                op_type: node.op_type.clone(),
                inputs: node.input.clone(),
                output: out,
                op,
            });
        }
        missing.check()?;
        let constants = host
            .into_iter()
            .map(|(name, h)| {
                let v = h.into_value(device).map_err(Error::TensorData)?;
                Ok((name, v))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        let mut last_use = HashMap::new();
        let mut readers = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for inp in &n.inputs {
                last_use.insert(inp.clone(), i);
                *readers.entry(inp.clone()).or_insert(0) += 1;
            }
        }
        let producers = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.output.clone(), i))
            .collect();
        Ok(Self {
            nodes,
            constants,
            input,
            output,
            last_use,
            readers,
            producers,
            batch_reshapes,
            device: device.clone(),
            profiler: Profiler::default(),
        })
    }

    /// Whether the output is computed from `tensor` (one pass over the nodes after its
    /// producer).
    pub fn feeds_output(&self, tensor: &str) -> bool {
        let Some(p) = self.producer(tensor) else {
            return tensor == self.input.name;
        };
        let mut reached = std::collections::HashSet::from([tensor]);
        for node in &self.nodes[p + 1..] {
            if node.inputs.iter().any(|i| reached.contains(i.as_str())) {
                reached.insert(node.output.as_str());
            }
        }
        reached.contains(self.output.as_str())
    }

    /// Index of the node producing `tensor`.
    pub fn producer(&self, tensor: &str) -> Option<usize> {
        self.producers.get(tensor).copied()
    }

    /// Runs `range` of the nodes, reading and writing `env`. Tensors are dropped after their
    /// last reader unless they are named in `keep`. On the CPU backend, convolutions run fused
    /// with their neighbours where nothing else needs the tensors in between (see
    /// [`fuse`](super::fuse)). `batch` is the number of images the run computes: every tensor
    /// may hold [`budget`](crate::budget)'s limit times that many values.
    pub fn run(
        &self,
        env: &mut Env,
        range: Range<usize>,
        keep: &[&str],
        batch: usize,
    ) -> Result<()> {
        self.run_steps(env, range, keep, batch, None)
    }

    /// Runs the whole graph like [`Graph::run`], fused alike, but keeps every value in `env`
    /// and returns the steps it took, for a reverse pass over them
    /// ([`backprop`](super::backprop)).
    pub(crate) fn run_retaining(&self, env: &mut Env, batch: usize) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        self.run_steps(env, 0..self.nodes.len(), &[], batch, Some(&mut steps))?;
        Ok(steps)
    }

    /// [`Graph::run`]; with `retained`, nothing is dropped from `env` and each step is recorded.
    fn run_steps(
        &self,
        env: &mut Env,
        range: Range<usize>,
        keep: &[&str],
        batch: usize,
        mut retained: Option<&mut Vec<Step>>,
    ) -> Result<()> {
        let retain = retained.is_some();
        crate::budget::with_batch(batch, || {
            let mut i = range.start;
            while i < range.end {
                let step = if let Some(plan) = self.plan_fusion(i, &range, keep, env) {
                    self.run_fused(env, &plan, keep, retain)?;
                    i = plan.last() + 1;
                    Step::Fused(plan)
                } else {
                    self.run_node(env, i, keep, None, retain)?;
                    i += 1;
                    Step::Node(i - 1)
                };
                if let Some(steps) = retained.as_deref_mut() {
                    steps.push(step);
                }
            }
            Ok(())
        })
    }

    /// Like [`Graph::run`] without fusion, calling `observe` with each node and its output.
    pub fn run_observed(
        &self,
        env: &mut Env,
        range: Range<usize>,
        keep: &[&str],
        batch: usize,
        observe: &mut Observer<'_>,
    ) -> Result<()> {
        crate::budget::with_batch(batch, || {
            for i in range {
                self.run_node(env, i, keep, Some(observe), false)?;
            }
            Ok(())
        })
    }

    /// The error of node `i`.
    pub(crate) fn bad(&self, i: usize, msg: String) -> Error {
        let node = &self.nodes[i];
        Error::BadNode {
            op: node.op_type.clone(),
            node: node.name.clone(),
            msg,
        }
    }

    /// The value of input `name` of a group of nodes whose last node is `last`: moved out of
    /// `env` when no node after the group reads it (so the op owns it alone) and the run does
    /// not `retain` every value, else shared.
    fn input_value(
        &self,
        env: &mut Env,
        name: &str,
        last: usize,
        more_reads_in_group: bool,
        keep: &[&str],
        retain: bool,
    ) -> Option<Value> {
        let last_read = !retain
            && self.last_use.get(name).is_some_and(|&l| l <= last)
            && !more_reads_in_group
            && name != self.output
            && !keep.contains(&name);
        let value = if last_read {
            env.remove(name)
        } else {
            env.get(name).cloned()
        };
        value.or_else(|| self.constants.get(name).cloned())
    }

    /// Runs node `i` alone.
    fn run_node(
        &self,
        env: &mut Env,
        i: usize,
        keep: &[&str],
        observe: Option<&mut Observer<'_>>,
        retain: bool,
    ) -> Result<()> {
        let node = &self.nodes[i];
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (j, name) in node.inputs.iter().enumerate() {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let again = node.inputs[j + 1..].contains(name);
            let value = self
                .input_value(env, name, i, again, keep, retain)
                .ok_or_else(|| {
                    self.bad(
                        i,
                        format!("input `{name}` is not produced by an earlier node"),
                    )
                })?;
            inputs.push(Some(value));
        }
        let start = self.profiler.now();
        let out = catch_unwind(AssertUnwindSafe(|| node.op.run(&mut inputs)))
            .map_err(|p| self.bad(i, panic_message(p.as_ref())))?
            .map_err(|m| self.bad(i, m))?;
        if start.is_some() {
            self.sync()?;
            self.profiler.add_op(&node.op_type, &node.name, start);
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
        crate::budget::check_live(live).map_err(|m| self.bad(i, m))
    }

    /// Runs a fusion group as one convolution; its output takes the last node's name.
    fn run_fused(&self, env: &mut Env, plan: &Plan, keep: &[&str], retain: bool) -> Result<()> {
        let last = plan.last();
        let conv = &self.nodes[plan.conv];
        // Every input name the group reads from outside itself, counted, so a tensor read twice
        // (say as the convolution's input and as the residual) is shared, not moved.
        let group_reads = |name: &str| {
            (plan.first()..=last)
                .flat_map(|j| self.nodes[j].inputs.iter())
                .filter(|n| *n == name)
                .count()
        };
        let missing = |j: usize, name: &str| {
            self.bad(
                j,
                format!("input `{name}` is not produced by an earlier node"),
            )
        };
        let mut inputs = Vec::with_capacity(conv.inputs.len());
        for (j, name) in conv.inputs.iter().enumerate() {
            let name = match (j, plan.pad) {
                (0, Some(p)) => &self.nodes[p].inputs[0],
                _ => name,
            };
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let shared = group_reads(name) > 1;
            let v = self.input_value(env, name, last, shared, keep, retain);
            inputs.push(Some(v.ok_or_else(|| missing(plan.conv, name))?));
        }
        let mut fusion = Fusion {
            pad: [(0, 0); 2],
            residual: None,
            activation: plan.activation.map(|a| a.1),
        };
        if let Some(p) = plan.pad {
            let peeked: Vec<Option<&Value>> = self.nodes[p]
                .inputs
                .iter()
                .enumerate()
                .map(|(j, n)| match j {
                    0 => inputs[0].as_ref(),
                    _ => self.peek(env, n),
                })
                .collect();
            fusion.pad = self.nodes[p].op.zero_spatial_pad(&peeked).ok_or_else(|| {
                self.bad(p, "the padding changed between planning and running".into())
            })?;
        }
        if let Some((a, name)) = &plan.add {
            let shared = group_reads(name) > 1;
            let v = self.input_value(env, name, last, shared, keep, retain);
            fusion.residual = Some(v.ok_or_else(|| missing(*a, name))?);
        }
        // The inputs only the group read are gone from `env` now.
        for j in (plan.first()..=last).filter(|_| !retain) {
            for name in &self.nodes[j].inputs {
                if self.last_use.get(name).is_some_and(|&l| l <= last)
                    && name != &self.output
                    && !keep.contains(&name.as_str())
                {
                    env.remove(name);
                }
            }
        }
        let start = self.profiler.now();
        let out = catch_unwind(AssertUnwindSafe(|| conv.op.run_fused(&mut inputs, fusion)))
            .map_err(|p| self.bad(plan.conv, panic_message(p.as_ref())))?
            .map_err(|m| self.bad(plan.conv, m))?;
        if start.is_some() {
            self.sync()?;
            let first = &self.nodes[plan.first()].name;
            self.profiler.add_op(&plan.label(self), first, start);
        }
        env.insert(self.nodes[last].output.clone(), out);
        self.check_live(env, last)
    }

    /// Waits for the device to finish its queued work (for timings on asynchronous devices).
    pub fn sync(&self) -> Result<()> {
        self.device
            .sync()
            .map_err(|e| Error::Backend(format!("device sync failed: {e:?}")))
    }
}

/// A decoration line such as Burn's `=== Tensor Operation Error ===`.
fn is_banner(line: &str) -> bool {
    line.starts_with("===") && line.ends_with("===")
}

/// Text of a caught panic, on one line.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "internal error".into())
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || is_banner(l)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unsupported ops of a graph, in the order they first appear, with their nodes: the
/// load goes on past the first so that one error names them all.
#[derive(Default)]
struct MissingOps(Vec<(String, Vec<String>)>);

impl MissingOps {
    fn add(&mut self, op: String, node: String) {
        match self.0.iter_mut().find(|(o, _)| *o == op) {
            Some((_, nodes)) => nodes.push(node),
            None => self.0.push((op, vec![node])),
        }
    }

    /// An error naming every missing op, if there is one.
    fn check(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let plural = if self.0.len() > 1 { "ops" } else { "op" };
        let list = self
            .0
            .iter()
            .map(|(op, nodes)| match nodes.len() {
                1 => format!("`{op}` at node `{}`", nodes[0]),
                n => format!("`{op}` at nodes `{}` and {} more", nodes[0], n - 1),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::UnsupportedOps {
            ops: format!("{plural} {list}"),
        })
    }
}
