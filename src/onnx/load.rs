//! Loading: ONNX bytes (and external weight files) to a [`Graph`] whose nodes each hold their
//! built operator. Every unsupported op is named in one error; constants stay on the host until
//! every operator is built, then move to the device once.

use std::collections::{HashMap, HashSet};

use burn::tensor::Device;
use onnx_ir::{Message, ModelProto, NodeProto};

use super::external::{self, ExternalData};
use super::graph::{Graph, InputSpec, Node};
use super::metadata::Metadata;
use super::ops::{self, BuildContext};
use super::proto::{Attrs, HostTensor, host_tensor};
use super::rewrite;
use crate::error::{self, Error, OpError, Result};

/// Input size used when the model leaves height and width dynamic.
pub const DEFAULT_INPUT_SIZE: usize = 224;

fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version)
}

fn constant_node(node: &NodeProto) -> std::result::Result<HostTensor, OpError> {
    let a = Attrs::of(node);
    if let Some(t) = a.tensor("value") {
        return Ok(host_tensor(t)?);
    }
    let attr = node
        .attribute
        .first()
        .ok_or_else(|| OpError::Attribute("Constant has no value".into()))?;
    match attr.name.as_str() {
        "value_float" => Ok(HostTensor::Float(vec![attr.f], vec![])),
        "value_floats" => Ok(HostTensor::Float(
            attr.floats.clone(),
            vec![attr.floats.len()],
        )),
        "value_int" => Ok(HostTensor::Int(ndarray::arr0(attr.i).into_dyn())),
        "value_ints" => Ok(HostTensor::Int(ndarray::arr1(&attr.ints).into_dyn())),
        other => Err(OpError::Unsupported(format!(
            "Constant attribute `{other}` is not supported"
        ))),
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
        dims[2].unwrap_or(DEFAULT_INPUT_SIZE),
        dims[3].unwrap_or(DEFAULT_INPUT_SIZE),
    ];
    crate::budget::check_shape(&at_load).map_err(|e| Error::Budget {
        what: format!("model input `{}`", input.name),
        msg: e.to_string().into(),
    })?;
    Ok(InputSpec {
        name: input.name.clone(),
        batch: dims[0],
        channels: dims[1].unwrap_or(3),
        height: dims[2],
        width: dims[3],
    })
}

/// Parses ONNX bytes and builds every node's operator on `device`; the graph's output is
/// `output` (by name), or its first.
pub fn parse(
    bytes: &[u8],
    external: &dyn ExternalData,
    device: &Device,
    output: Option<&str>,
) -> Result<Graph> {
    if bytes.is_empty() {
        return Err(Error::OnnxParse("the file is empty".into()));
    }
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| Error::OnnxParse(e.to_string()))?;
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
        let t = external::resolve(t, external)?;
        host.insert(t.name.clone(), host_tensor(&t)?);
    }
    let input = input_spec(&model, &host)?;
    let output = match (graph.output.as_slice(), output) {
        ([], _) => return Err(Error::NotClassifier("the graph has no outputs".into())),
        ([first, ..], None) => first.name.clone(),
        (all, Some(name)) => match all.iter().find(|o| o.name == name) {
            Some(o) => o.name.clone(),
            None => {
                let names: Vec<String> = all.iter().map(|o| format!("`{}`", o.name)).collect();
                return Err(Error::InvalidOption(error::Message::from(format!(
                    "the model has no output `{name}`; its outputs: {}",
                    names.join(", ")
                ))));
            }
        },
    };
    let metadata = Metadata::read(
        model
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str())),
    );
    if metadata.task.as_deref() == Some("obb") {
        return Err(Error::UnsupportedHead(
            "an Ultralytics oriented-box model (its metadata says task `obb`): its rotated boxes are not supported; export a `detect`, `segment` or `pose` model".into(),
        ));
    }
    let rewritten = rewritten_nodes(graph, &host);
    let graph_nodes = rewritten.as_deref().unwrap_or(&graph.node);
    let needed = needed_nodes(graph_nodes, &output);
    let mut left_out = HashSet::new();
    let mut nodes = Vec::new();
    let mut missing = MissingOps::default();
    let mut batch_reshapes = 0;
    // Who produces each tensor: a second producer makes the graph ambiguous.
    let mut produced: HashMap<String, String> =
        HashMap::from([(input.name.clone(), "the model input".to_string())]);
    for (node, needed) in graph_nodes.iter().zip(&needed) {
        let name = if node.name.is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name.clone()
        };
        let bad = |error: OpError| Error::BadNode {
            op: node.op_type.clone(),
            node: name.clone(),
            error,
        };
        let out = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad(OpError::Graph("node has no output".into())))?;
        let multi_output = ops::MULTI_OUTPUT.contains(&node.op_type.as_str());
        let computed = if multi_output { node.output.len() } else { 1 };
        for o in node.output.iter().take(computed).filter(|o| !o.is_empty()) {
            if let Some(first) = produced.insert(o.clone(), format!("node `{name}`")) {
                return Err(bad(OpError::Graph(format!(
                    "its output `{o}` is also produced by {first}; every tensor needs exactly one producer, so the file is malformed (re-export the model)"
                ))));
            }
        }
        // What the explained output does not depend on (another output's branch, such as an
        // instance-segmentation model's mask prototypes) is never built or run.
        if !needed {
            left_out.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
            continue;
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
                bad(OpError::Unsupported(format!(
                    "output {i} of a {} cannot be built",
                    node.op_type
                )))
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
    if needed.contains(&false) {
        let read: HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.inputs.iter().map(String::as_str))
            .chain([output.as_str()])
            .collect();
        host.retain(|name, _| read.contains(name.as_str()));
    }
    let constants = host
        .into_iter()
        .map(|(name, h)| {
            let v = h.into_value(device)?;
            Ok((name, v))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    let outputs = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut graph = Graph::new(
        nodes,
        constants,
        input,
        (output, outputs),
        batch_reshapes,
        device,
    );
    graph.metadata = metadata;
    graph.left_out = left_out;
    Ok(graph)
}

/// The constants a rewrite may look at: the initialisers, `Constant` nodes and the legacy
/// exporter's `Identity` copies of an initialiser.
struct KnownConstants<'a> {
    host: &'a HashMap<String, HostTensor>,
    nodes: HashMap<&'a str, &'a NodeProto>,
    copies: HashMap<&'a str, &'a str>,
}

impl KnownConstants<'_> {
    /// `f` of the constant `name`, if it is one: an initialiser in place (it may be a large
    /// weight), a `Constant` node decoded, a copy as what it copies.
    fn with<R>(&self, name: &str, f: impl FnOnce(&HostTensor) -> Option<R>) -> Option<R> {
        let name = self.copies.get(name).copied().unwrap_or(name);
        match self.host.get(name) {
            Some(t) => f(t),
            None => f(&constant_node(self.nodes.get(name)?).ok()?),
        }
    }
}

/// The graph's nodes with [`rewrite`]'s rewrites applied, if any applies; `host` holds the
/// initialisers.
fn rewritten_nodes(
    graph: &onnx_ir::GraphProto,
    host: &HashMap<String, HostTensor>,
) -> Option<Vec<NodeProto>> {
    let of_type = |op: &'static str| {
        (graph.node.iter())
            .filter(move |n| n.op_type == op)
            .filter_map(|n| Some((n.output.first()?.as_str(), n)))
    };
    let known = KnownConstants {
        host,
        nodes: of_type("Constant").collect(),
        copies: (of_type("Identity"))
            .filter_map(|(out, n)| Some((out, n.input.first()?.as_str())))
            .collect(),
    };
    let scalar = |name: &str| {
        known.with(name, |t| match t.shape().iter().product::<usize>() {
            1 => t.floats().first().copied(),
            _ => None,
        })
    };
    let shape = |name: &str| known.with(name, |t| Some(t.shape()));
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let constants = rewrite::Constants {
        scalar: &scalar,
        shape: &shape,
    };
    rewrite::rewritten(&graph.node, &outputs, &constants)
}

/// Which of `nodes` (in topological order) the tensor `output` depends on.
fn needed_nodes(nodes: &[NodeProto], output: &str) -> Vec<bool> {
    let mut wanted: HashSet<&str> = HashSet::from([output]);
    let mut needed = vec![false; nodes.len()];
    for (i, node) in nodes.iter().enumerate().rev() {
        if node.output.iter().any(|o| wanted.contains(o.as_str())) {
            needed[i] = true;
            wanted.extend(
                node.input
                    .iter()
                    .map(String::as_str)
                    .filter(|i| !i.is_empty()),
            );
        }
    }
    needed
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
