//! The interpreter's graph: nodes in file order, each with its built operator, the constants,
//! the image input and the logits output, and the questions every later layer asks of it
//! (who produces a tensor, who reads it, where its value is). Built by [`load`](super::load),
//! run by [`exec`](super::exec).

use std::collections::{HashMap, HashSet};

use burn::tensor::Device;

use super::metadata::Metadata;
use super::ops::Operator;
use super::profile::Profiler;
use super::value::Value;
use crate::error::{Error, OpError, Result};

/// Tensors by name during one forward pass.
pub type Env = HashMap<String, Value>;

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
    /// Name of the explained output (the logits).
    pub output: String,
    /// Every output of the graph, in its order.
    pub outputs: Vec<String>,
    /// Index of the last node that reads each tensor, to free memory early.
    pub(crate) last_use: HashMap<String, usize>,
    /// How many node inputs read each tensor (a node reading it twice counts twice).
    pub(crate) readers: HashMap<String, usize>,
    /// The node that produces each tensor.
    producers: HashMap<String, usize>,
    /// Nodes whose fixed batch of 1 follows the run's batch (see `BuildContext::fixed_batch`).
    pub batch_reshapes: usize,
    /// The device holding the constants.
    device: Device,
    /// Per-op timings, when switched on.
    pub(crate) profiler: Profiler,
    /// What the exporter wrote about the model (task, class names).
    pub metadata: Metadata,
    /// Tensors of the file's nodes that were not built, the explained output not depending on
    /// them (another output's branch).
    pub left_out: HashSet<String>,
}

impl Graph {
    /// A graph of `nodes` (in topological order) reading `constants`, with the reader and
    /// producer indices every run uses.
    pub fn new(
        nodes: Vec<Node>,
        constants: HashMap<String, Value>,
        input: InputSpec,
        (output, outputs): (String, Vec<String>),
        batch_reshapes: usize,
        device: &Device,
    ) -> Self {
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
        Self {
            nodes,
            constants,
            input,
            output,
            outputs,
            last_use,
            readers,
            producers,
            batch_reshapes,
            device: device.clone(),
            profiler: Profiler::default(),
            metadata: Metadata::default(),
            left_out: HashSet::new(),
        }
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

    /// `tensor` and every tensor it is computed from (graph inputs and constants aside).
    pub fn ancestors(&self, tensor: &str) -> std::collections::HashSet<String> {
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![tensor.to_string()];
        while let Some(t) = todo.pop() {
            if let Some(p) = self.producer(&t)
                && seen.insert(t)
            {
                todo.extend(self.nodes[p].inputs.iter().cloned());
            }
        }
        seen
    }

    /// The value of tensor `name`, without taking it.
    pub fn peek<'a>(&'a self, env: &'a Env, name: &str) -> Option<&'a Value> {
        env.get(name).or_else(|| self.constants.get(name))
    }

    /// The value of `name` in `env` or among the constants; `None` for an absent input (`""`).
    pub fn value<'a>(&'a self, env: &'a Env, name: &str) -> Option<&'a Value> {
        (!name.is_empty()).then(|| self.peek(env, name)).flatten()
    }

    /// The error `error` at node `i`.
    pub fn bad(&self, i: usize, error: OpError) -> Error {
        let node = &self.nodes[i];
        Error::BadNode {
            op: node.op_type.clone(),
            node: node.name.clone(),
            error,
        }
    }

    /// Waits for the device to finish its queued work (for timings on asynchronous devices).
    pub fn sync(&self) -> Result<()> {
        self.device
            .sync()
            .map_err(|e| Error::Backend(format!("device sync failed: {e:?}")))
    }
}
