//! Run-time ONNX on Burn: parse bytes, execute node by node, and split the graph at a named
//! tensor so the part before it runs without autodiff and the part after it with autodiff.

mod backprop;
pub mod cpu_conv;
pub mod cpu_conv_grad;
mod cpu_par;
pub mod cpu_winograd;
pub mod external;
mod fuse;
mod graph;
mod host;
mod ops;
pub mod profile;
mod proto;
mod value;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor};

/// Threads igcam's CPU kernels use: rayon's pool natively and in the browser's threaded build,
/// 1 in the single-threaded browser build.
pub use cpu_par::threads as cpu_threads;
use graph::Graph;
pub use graph::{Env, InputSpec, panic_message};
pub use ops::supported as supported_ops;
pub use value::{FloatValue, Value, host_values};

use crate::error::{Error, Result};

/// Input size used when the model leaves height and width dynamic.
pub const DEFAULT_INPUT_SIZE: usize = 224;

/// Op types that count as "an activation" when choosing the default layer.
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "HardSwish",
    "Elu",
    "Selu",
    "PRelu",
    "Sigmoid",
    "Tanh",
];

/// Op types that can be a network's global pooling (when their output has no spatial extent).
const GLOBAL_POOLING: &[&str] = &[
    "GlobalAveragePool",
    "GlobalMaxPool",
    "AveragePool",
    "MaxPool",
    "ReduceMean",
    "ReduceMax",
];

/// A tensor that can serve as the explained layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    /// ONNX tensor name.
    pub name: String,
    /// Op type of the node that produces it.
    pub op_type: String,
    /// Shape for a batch of one.
    pub shape: Vec<usize>,
}

/// An ONNX image classifier loaded onto a Burn device.
pub struct OnnxModel {
    graph: Graph,
    device: Device,
    input_size: [usize; 2],
    classes: usize,
    /// Output shape of every node for a batch of one, by tensor name.
    shapes: HashMap<String, Vec<usize>>,
    /// See [`OnnxModel::batch_breaker`].
    batch_breaker: Option<String>,
    /// Set once a host reverse pass met an op without a host gradient: input gradients then
    /// go straight to Burn's autodiff.
    autodiff_only: std::sync::atomic::AtomicBool,
}

/// Runs `graph` on a batch of two blank images and returns the first node whose output
/// depends on the image but does not have twice its first dimension for one image (`shapes`)
/// and the same others, or that fails. Shapes only: no value is read back from the device.
fn batch_breaker(
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
    [h, w]: [usize; 2],
    device: &Device,
) -> Option<String> {
    let blank = Tensor::<4>::zeros([2, graph.input.channels, h, w], device);
    let mut env = Env::new();
    env.insert(
        graph.input.name.clone(),
        Value::Float(FloatValue::nchw(blank)),
    );
    let mut depends = std::collections::HashSet::from([graph.input.name.clone()]);
    let mut breaker = None;
    let run = graph.run_observed(&mut env, 0..graph.nodes.len(), &[], 2, &mut |node, v| {
        if !node.inputs.iter().any(|i| depends.contains(i)) {
            return;
        }
        depends.insert(node.output.clone());
        // The batch must stay the first axis: `[4, 196, 64]` becoming `[4, 196, 128]` holds
        // twice the values but has folded the images into another axis.
        let one = shapes.get(&node.output).map_or(&[][..], Vec::as_slice);
        let two = v.shape();
        let follows = matches!((one.split_first(), two.split_first()),
            (Some((n1, r1)), Some((n2, r2))) if *n2 == 2 * n1 && r1 == r2);
        if matches!(v, Value::Float(_)) && !follows && breaker.is_none() {
            breaker = Some(node.name.clone());
        }
    });
    match run {
        Err(Error::BadNode { node, .. }) => breaker.or(Some(node)),
        Err(_) => breaker.or_else(|| Some(graph.output.clone())),
        Ok(()) => breaker,
    }
}

impl OnnxModel {
    /// Parses ONNX bytes, puts the weights on `device` and checks the graph with one forward pass
    /// of a blank image.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Self::from_bytes_and_data(bytes, &external::NoExternalData, device)
    }

    /// [`OnnxModel::from_bytes`] for a model whose weights are (partly) in external files, read
    /// through `external` (PyTorch's `dynamo=True` export: `model.onnx` + `model.onnx.data`).
    pub fn from_bytes_and_data(
        bytes: &[u8],
        external: &dyn external::ExternalData,
        device: &Device,
    ) -> Result<Self> {
        let graph = Graph::parse(bytes, external, device)?;
        let h = graph.input.height.unwrap_or(DEFAULT_INPUT_SIZE);
        let w = graph.input.width.unwrap_or(DEFAULT_INPUT_SIZE);
        let blank = Tensor::<4>::zeros([1, graph.input.channels, h, w], device);
        let mut env = Env::new();
        env.insert(
            graph.input.name.clone(),
            Value::Float(FloatValue::nchw(blank)),
        );
        let mut shapes = HashMap::new();
        graph.run_observed(&mut env, 0..graph.nodes.len(), &[], 1, &mut |node, v| {
            shapes.insert(node.output.clone(), v.shape());
        })?;
        if graph.constants.contains_key(&graph.output) {
            return Err(Error::NotClassifier(format!(
                "output `{}` is a constant that does not depend on the image",
                graph.output
            )));
        }
        let out_shape = env.get(&graph.output).map(Value::shape).unwrap_or_default();
        let classes: usize = out_shape.iter().skip(1).product();
        if out_shape.first() != Some(&1) || classes < 2 || out_shape.iter().skip(2).any(|&d| d != 1)
        {
            return Err(Error::NotClassifier(format!(
                "output `{}` has shape {out_shape:?}",
                graph.output
            )));
        }
        if classes > crate::budget::MAX_CLASSES {
            return Err(Error::NotClassifier(format!(
                "output `{}` has {classes} classes, more than the {} any classifier has",
                graph.output,
                crate::budget::MAX_CLASSES
            )));
        }
        let batch_breaker = (graph.input.batch == Some(1))
            .then(|| batch_breaker(&graph, &shapes, [h, w], device))
            .flatten();
        Ok(Self {
            graph,
            device: device.clone(),
            input_size: [h, w],
            classes,
            shapes,
            batch_breaker,
            autodiff_only: Default::default(),
        })
    }

    /// Values in the largest node output for one image.
    pub fn largest_activation(&self) -> usize {
        self.shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(0)
    }

    /// Values in every node's output for one image (what a backward pass through the whole
    /// network keeps).
    pub fn activation_values(&self) -> usize {
        self.shapes
            .values()
            .fold(0usize, |n, s| n.saturating_add(s.iter().product::<usize>()))
    }

    /// For a model exported with a fixed batch of 1: the first node whose output does not
    /// follow a batch of images (the new exporter's `as_strided` bakes the batch into a
    /// Gather), which mixes or drops the images of a batch. Images are then run one per forward:
    /// [`OnnxModel::forward`] splits batches, and the explainer's path runs one point at a time.
    pub fn batch_breaker(&self) -> Option<&str> {
        self.batch_breaker.as_deref()
    }

    /// The affine stem: the first nodes of the graph, from the image input up to the first
    /// non-affine op (Conv, BatchNormalization, Pad, arithmetic with constants), as the index
    /// of its last node and the name of its output. Along the straight path `b + a (x - b)`
    /// the stem's output is `S(b) + a (S(x) - S(b))`, so the path needs the stem run on two
    /// images only (see [`OnnxModel::forward_stem_to`]).
    pub fn affine_stem(&self) -> Option<(usize, &str)> {
        let nodes = &self.graph.nodes;
        let mut current = self.graph.input.name.as_str();
        let mut end = None;
        for (i, node) in nodes.iter().enumerate() {
            if self.graph.readers.get(current) != Some(&1) {
                break;
            }
            let Some(at) = node.inputs.iter().position(|n| n == current) else {
                break;
            };
            let others_constant = node
                .inputs
                .iter()
                .enumerate()
                .all(|(j, n)| j == at || n.is_empty() || self.graph.constants.contains_key(n));
            if !others_constant || !node.op.affine_in(at) || node.output == self.graph.output {
                break;
            }
            end = Some(i);
            current = &node.output;
        }
        let end = end?;
        (self.shapes.get(current).map(Vec::len) == Some(4)).then_some((end, current))
    }

    /// Whether the affine stem ends before `layer` (so a path to `layer` can start from it).
    pub fn stem_precedes(&self, layer: &str) -> bool {
        match (self.affine_stem(), self.graph.producer(layer)) {
            (Some((end, _)), Some(p)) => end < p,
            _ => false,
        }
    }

    /// Runs the affine stem (see [`OnnxModel::affine_stem`]) on images `x`.
    pub fn run_stem(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let (end, name) = self
            .affine_stem()
            .ok_or_else(|| Error::Backend("the model has no affine stem".into()))?;
        // The stem's ops are per image (Conv, BatchNormalization, Pad, arithmetic with
        // constants), so a batch breaker later in the graph does not concern it.
        let batch = x.dims()[0];
        let mut env = self.start(x);
        self.graph.run(&mut env, 0..end + 1, &[name], batch)?;
        match env.remove(name) {
            Some(Value::Float(f)) if f.rank == 4 => Ok(f.tensor),
            _ => Err(Error::Backend(format!("stem output `{name}` is not 4-D"))),
        }
    }

    /// Like [`OnnxModel::forward_to`], starting from the affine stem's output `stem`.
    pub fn forward_stem_to(&self, stem: Tensor<4>, layer: &str) -> Result<(Tensor<4>, Env)> {
        self.layer_shape(layer)?;
        let p = self.graph.producer(layer).expect("checked by layer_shape");
        let (end, name) = self
            .affine_stem()
            .filter(|&(end, _)| end < p)
            .ok_or_else(|| Error::Backend(format!("layer `{layer}` is inside the stem")))?;
        let batch = stem.dims()[0];
        let mut env = Env::new();
        env.insert(name.to_string(), Value::Float(FloatValue::nchw(stem)));
        self.run_images(&mut env, end + 1..p + 1, &[layer], batch)?;
        self.take_layer(env, layer)
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Starts timing every operator and explanation phase with `clock` (milliseconds), until
    /// [`OnnxModel::finish_profile`].
    pub fn start_profile(&self, clock: profile::Clock) {
        self.graph.profiler.start(clock);
    }

    /// Stops timing and returns the per-op and per-phase totals since
    /// [`OnnxModel::start_profile`].
    pub fn finish_profile(&self) -> profile::Profile {
        self.graph.profiler.finish()
    }

    /// Runs `f` as the named explanation phase: when profiling, its time (after a device sync)
    /// is added to that phase.
    pub fn phase<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = self.graph.profiler.now();
        let out = f()?;
        if start.is_some() {
            self.graph.sync()?;
            self.graph.profiler.add_phase(name, start);
        }
        Ok(out)
    }

    /// The image input as declared in the model.
    pub fn input_spec(&self) -> &InputSpec {
        &self.graph.input
    }

    /// How many `Reshape`s of a model exported with a fixed batch of 1 were made to follow
    /// the input's batch instead (so that the path can run several images per pass).
    pub fn batch_reshapes(&self) -> usize {
        self.graph.batch_reshapes
    }

    /// Input `[height, width]` (224 where the model leaves it dynamic).
    pub fn input_size(&self) -> [usize; 2] {
        self.input_size
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.classes
    }

    /// Every 4-D tensor with spatial size > 1, in graph order: the candidates for `--layer`.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.graph
            .nodes
            .iter()
            .filter(|n| self.is_candidate(&n.output))
            .map(|n| LayerInfo {
                name: n.output.clone(),
                op_type: n.op_type.clone(),
                shape: self.shapes[&n.output].clone(),
            })
            .collect()
    }

    /// The default layer: the 4-D tensor the network's global pooling reads, i.e. the output
    /// of the last feature block (ResNet `layer4`, EfficientNet's last SiLU `Mul`, GoogLeNet's
    /// last `Concat`; before a 1×1-convolution classifier as in SqueezeNet, that classifier's
    /// input). Without a global pooling (VGG): the output of the last activation after a
    /// convolution with spatial size > 1 (`features.29`); failing that, the last 4-D candidate.
    pub fn default_layer(&self) -> Option<String> {
        self.default_layer_reason().map(|(name, _)| name)
    }

    /// The default layer and why it was chosen, for `layers`.
    pub fn default_layer_reason(&self) -> Option<(String, String)> {
        self.pooled_features().or_else(|| self.last_activation())
    }

    /// A 4-D tensor with spatial size > 1.
    fn is_candidate(&self, tensor: &str) -> bool {
        self.shapes
            .get(tensor)
            .is_some_and(|s| s.len() == 4 && s[2] * s[3] > 1)
    }

    /// The input of the last global pooling: a pooling or reduction whose output keeps the
    /// channels of a 4-D input with spatial size > 1 and has no spatial extent left.
    fn pooled_features(&self) -> Option<(String, String)> {
        let pool = self.graph.nodes.iter().rev().find(|n| {
            let input = n.inputs.first().map_or("", String::as_str);
            let (Some(i), Some(o)) = (self.shapes.get(input), self.shapes.get(&n.output)) else {
                return false;
            };
            // More than one channel: a channels-last LayerNorm's mean over `[1, 1, 1, C]`
            // (ConvNeXt's classifier at opset 13) is not a pooling.
            GLOBAL_POOLING.contains(&n.op_type.as_str())
                && self.is_candidate(input)
                && o.len() >= 2
                && i[1] > 1
                && o[1] == i[1]
                && o[2..].iter().all(|&d| d == 1)
        })?;
        let mut tensor = pool.inputs[0].clone();
        let mut why = format!("the input of the global pooling `{}`", pool.name);
        // A 1×1-convolution classifier before the pooling (SqueezeNet): its class channels are
        // not features; explain what it reads.
        if self.shapes.get(&tensor).map(|s| s[1]) == Some(self.classes) {
            let mut t = tensor.clone();
            while let Some(p) = self.graph.producer(&t).map(|i| &self.graph.nodes[i]) {
                let Some(next) = p.inputs.first().filter(|n| self.is_candidate(n)) else {
                    break;
                };
                if p.op_type == "Conv" {
                    why = format!("the input of the 1×1-convolution classifier `{}`", p.name);
                    tensor = next.clone();
                    break;
                }
                if !ACTIVATIONS.contains(&p.op_type.as_str()) && p.op_type != "BatchNormalization" {
                    break;
                }
                t = next.clone();
            }
        }
        Some((tensor, why))
    }

    /// The output of the last activation after the first convolution, else the last 4-D
    /// candidate after it.
    fn last_activation(&self) -> Option<(String, String)> {
        let first_conv = self.graph.nodes.iter().position(|n| n.op_type == "Conv")?;
        let layers = self.layers();
        let after_conv =
            |l: &&LayerInfo| self.graph.producer(&l.name).is_some_and(|i| i > first_conv);
        layers
            .iter()
            .filter(after_conv)
            .rfind(|l| ACTIVATIONS.contains(&l.op_type.as_str()))
            .map(|l| {
                (
                    l.name.clone(),
                    "the last activation (no global pooling)".to_string(),
                )
            })
            .or_else(|| {
                layers
                    .iter()
                    .rfind(after_conv)
                    .map(|l| (l.name.clone(), "the last 4-D tensor".to_string()))
            })
    }

    /// Checks that `name` is a 4-D tensor of the graph and returns its batch-1 shape.
    pub fn layer_shape(&self, name: &str) -> Result<Vec<usize>> {
        let Some(shape) = self
            .graph
            .producer(name)
            .and_then(|_| self.shapes.get(name))
        else {
            let best = self
                .graph
                .nodes
                .iter()
                .map(|n| (strsim::jaro_winkler(name, &n.output), &n.output))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match best {
                Some((score, n)) if score > 0.8 => format!(" (did you mean `{n}`?)"),
                _ => String::new(),
            };
            return Err(Error::UnknownLayer {
                name: name.into(),
                hint,
            });
        };
        if shape.len() != 4 {
            return Err(Error::LayerNot4d {
                name: name.into(),
                shape: shape.clone(),
            });
        }
        if !self.graph.feeds_output(name) {
            return Err(Error::LayerUnused {
                name: name.into(),
                output: self.graph.output.clone(),
            });
        }
        Ok(shape.clone())
    }

    fn start(&self, x: Tensor<4>) -> Env {
        let mut env = Env::new();
        env.insert(
            self.graph.input.name.clone(),
            Value::Float(FloatValue::nchw(x)),
        );
        env
    }

    /// The graph's output in `env`, as floats.
    fn output<'e>(&self, env: &'e Env) -> Result<&'e FloatValue> {
        match env.get(&self.graph.output) {
            Some(Value::Float(f)) => Ok(f),
            _ => Err(Error::NotClassifier(format!(
                "output `{}` was not computed as floats",
                self.graph.output
            ))),
        }
    }

    fn logits(&self, env: Env) -> Result<Tensor<2>> {
        let t = self.output(&env)?.tensor.clone();
        // The tensor alone, as the graph's last value.
        drop(env);
        let n = t.dims().iter().product::<usize>() / self.classes;
        Ok(t.reshape([n, self.classes]))
    }

    /// Full forward pass: `[N, C, H, W]` normalised images to `[N, classes]` logits (one image
    /// at a time when the model has a [`OnnxModel::batch_breaker`]).
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let n = x.dims()[0];
        if n > 1 && self.batch_breaker.is_some() {
            let logits = (0..n)
                .map(|i| self.forward(x.clone().narrow(0, i, 1)))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(logits, 0));
        }
        let mut env = self.start(x);
        self.run_images(&mut env, 0..self.graph.nodes.len(), &[], n)?;
        self.logits(env)
    }

    /// The gradient of the summed `target` logits with respect to the images `x` (`[N, C, H,
    /// W]`), by a reverse pass over the host kernels on Burn's CPU backend. `Ok(None)` where
    /// that does not apply (another device, a model run one image at a time, an op without a
    /// host gradient): use Burn's autodiff then.
    pub fn input_gradient(&self, x: Tensor<4>, target: usize) -> Result<Option<Tensor<4>>> {
        use std::sync::atomic::Ordering;
        let n = x.dims()[0];
        if !ops::is_plain_cpu(&self.device)
            || (n > 1 && self.batch_breaker.is_some())
            || self.autodiff_only.load(Ordering::Relaxed)
        {
            return Ok(None);
        }
        let mut env = self.start(x);
        let steps = self.phase("input forward (IG)", || {
            self.graph.run_retaining(&mut env, n)
        })?;
        let seed = backprop::target_seed(self.output(&env)?, self.classes, target);
        let grad = self.phase("input backward (IG)", || {
            self.graph.input_gradient(&env, &steps, seed)
        })?;
        match grad {
            Some(g) => Ok(Some(g.tensor)),
            None => {
                self.autodiff_only.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Runs the graph up to and including the producer of `layer`; returns that layer's
    /// activations and the tensors the rest of the graph still needs.
    pub fn forward_to(&self, x: Tensor<4>, layer: &str) -> Result<(Tensor<4>, Env)> {
        self.layer_shape(layer)?;
        let p = self.graph.producer(layer).expect("checked by layer_shape");
        let batch = x.dims()[0];
        let mut env = self.start(x);
        self.run_images(&mut env, 0..p + 1, &[layer], batch)?;
        self.take_layer(env, layer)
    }

    /// Runs `range` of the graph on `batch` images (the entry points past the affine stem);
    /// refuses several images where the model has a batch breaker.
    fn run_images(
        &self,
        env: &mut Env,
        range: std::ops::Range<usize>,
        keep: &[&str],
        batch: usize,
    ) -> Result<()> {
        if let Some(node) = self.batch_breaker.as_deref().filter(|_| batch > 1) {
            return Err(Error::Backend(format!(
                "node `{node}` does not follow the batch: run one image at a time"
            )));
        }
        self.graph.run(env, range, keep, batch)
    }

    /// Takes the 4-D `layer` out of `env`.
    fn take_layer(&self, mut env: Env, layer: &str) -> Result<(Tensor<4>, Env)> {
        match env.remove(layer) {
            Some(Value::Float(f)) if f.rank == 4 => Ok((f.tensor, env)),
            other => Err(Error::LayerNot4d {
                name: layer.into(),
                shape: other.map(|v| v.shape()).unwrap_or_default(),
            }),
        }
    }

    /// Runs the rest of the graph after `layer`, with `activation` standing in for it.
    /// Tensors keep their autodiff state, so a tracked `activation` yields tracked logits.
    pub fn forward_from(
        &self,
        mut env: Env,
        layer: &str,
        activation: Tensor<4>,
    ) -> Result<Tensor<2>> {
        let p = self
            .graph
            .producer(layer)
            .ok_or_else(|| Error::UnknownLayer {
                name: layer.into(),
                hint: String::new(),
            })?;
        let batch = activation.dims()[0];
        env.insert(
            layer.to_string(),
            Value::Float(FloatValue::nchw(activation)),
        );
        self.run_images(&mut env, p + 1..self.graph.nodes.len(), &[], batch)?;
        self.logits(env)
    }
}

/// Runs a whole graph once on a 4-D input and returns its output's values and shape, without
/// the classifier checks of [`OnnxModel`] (for operator tests and debugging).
pub fn run_graph(
    bytes: &[u8],
    device: &Device,
    input: Tensor<4>,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let graph = Graph::parse(bytes, &external::NoExternalData, device)?;
    let batch = input.dims()[0];
    let mut env = Env::new();
    env.insert(
        graph.input.name.clone(),
        Value::Float(FloatValue::nchw(input)),
    );
    graph.run(&mut env, 0..graph.nodes.len(), &[], batch)?;
    let out = env.remove(&graph.output).ok_or_else(|| {
        Error::NotClassifier(format!("output `{}` was not computed", graph.output))
    })?;
    Ok((out.host_floats()?, out.shape()))
}
