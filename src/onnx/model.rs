//! [`OnnxModel`]: the one door to the interpreter. A classifier loaded onto a Burn device,
//! checked with a blank forward pass, that runs the graph whole or split at the explained
//! layer, along a path from a baseline, and gives the gradients the explanation methods need.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor, TensorData};

use super::backprop;
use super::boxed;
use super::exec;
use super::external::{self, ExternalData};
use super::fusion;
use super::graph::{Env, Graph, InputSpec};
use super::hessian;
use super::layer_gradient::LayerGradient;
use super::layers::{LayerInfo, Layers};
use super::load::{self, DEFAULT_INPUT_SIZE};
use super::metadata::Metadata;
use super::objective::Objective;
use super::ops::is_plain_cpu;
use super::path::{PathEnds, affine_stem, along, along_on_host};
use super::profile;
use super::tokens::{self, View};
use super::value::{FloatValue, MAX_RANK, Value, host_values};
use crate::budget;
use crate::error::{Error, Result};
use crate::kernels::par;
use crate::task::detect::DetectLayout;

/// Reverse passes per thread in a group of objectives run side by side (a detector's
/// detections): enough for the threads to balance passes of unequal cost (each group ends
/// when its slowest thread does: YOLOv8n's 48 detections took 10 % longer in groups of 8
/// than of 24 on 2 threads), while the gradients' memory budget bounds a group's size.
const PASSES_PER_THREAD: usize = 12;

/// Where a streaming reverse pass hands out its gradients: a group of objectives at a time,
/// with the first one's index.
type EachGroup<'a> = dyn FnMut(usize, Vec<Vec<Option<LayerGradient>>>) -> Result<()> + 'a;

/// The layer gradients of all `count` objectives of the streaming pass `run`, each made whole;
/// `None` unless it served them all.
fn collected(
    count: usize,
    run: impl FnOnce(&mut EachGroup) -> Result<usize>,
) -> Result<Option<Vec<Vec<Option<Tensor<4>>>>>> {
    let mut grads = Vec::with_capacity(count);
    let served = run(&mut |_, group| {
        let whole = |g: Vec<Option<LayerGradient>>| g.into_iter().map(|g| g.map(|g| g.whole()));
        grads.extend(group.into_iter().map(|g| whole(g).collect()));
        Ok(())
    })?;
    Ok((served == count).then_some(grads))
}

/// What FullGrad reads ([`OnnxModel::bias_gradients`]).
pub struct BiasGradients {
    /// The gradient with respect to the images.
    pub input: Tensor<4>,
    /// Each biased 4-D output's per-channel bias and gradient, in graph order.
    pub layers: Vec<(Vec<f32>, Tensor<4>)>,
}

/// An ONNX image classifier loaded onto a Burn device.
pub struct OnnxModel {
    graph: Graph,
    device: Device,
    input_size: [usize; 2],
    classes: usize,
    /// The output's `[height, width]` per class: `[1, 1]` for a classifier, the score map's
    /// size for a segmenter.
    plane: [usize; 2],
    /// A detector's output layout (`None` for a classifier or a segmenter).
    detector: Option<DetectLayout>,
    /// Output values per image.
    per_image: usize,
    /// Output shape of every node for a batch of one, by tensor name.
    shapes: HashMap<String, Vec<usize>>,
    /// What the token views of transformer layers read from the graph.
    tokens: tokens::TokenGraph,
    /// See [`OnnxModel::batch_breaker`].
    batch_breaker: Option<String>,
    /// The affine stem: its last node and its output (see [`super::path`]).
    stem: Option<(usize, String)>,
    /// Set once a host reverse pass met an op without a host gradient: input gradients then
    /// go straight to Burn's autodiff.
    autodiff_only: AtomicBool,
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
    let mut env = start(graph, blank);
    let mut depends = std::collections::HashSet::from([graph.input.name.clone()]);
    let mut breaker = None;
    let mut displaced = None;
    let all = 0..graph.nodes.len();
    let run = exec::run_observed(graph, &mut env, all, &[], 2, &mut |node, v| {
        // A shape carries no image values (a ViT's attention scale `1/sqrt(d)` is computed
        // from one).
        if node.op_type == "Shape" || !node.inputs.iter().any(|i| depends.contains(i)) {
            return;
        }
        depends.insert(node.output.clone());
        // The batch must stay the first axis: `[4, 196, 64]` becoming `[4, 196, 128]` holds
        // twice the values but has folded the images into another axis.
        let one = shapes.get(&node.output).map_or(&[][..], Vec::as_slice);
        let two = v.shape();
        let doubled: Vec<usize> = (0..one.len().min(two.len()))
            .filter(|&k| two[k] != one[k])
            .collect();
        let on_axis = |k: usize| one.len() == two.len() && doubled == [k] && two[k] == 2 * one[k];
        if !matches!(v, Value::Float(_)) || on_axis(0) || breaker.is_some() {
            return;
        }
        // A transposed batch (a ViT's `[3, N, heads, tokens, d]` q, k and v) may come back
        // to the first axis: the values decide, below.
        if (1..one.len()).any(on_axis) {
            displaced.get_or_insert_with(|| node.name.clone());
        } else {
            breaker = Some(node.name.clone());
        }
    });
    match run {
        Err(Error::BadNode { node, .. }) => breaker.or(Some(node)),
        Err(_) => breaker.or_else(|| Some(graph.output.clone())),
        Ok(()) if breaker.is_none() && displaced.is_some() => {
            let keeps_images = images_kept_apart(graph, [h, w], device).unwrap_or(false);
            if keeps_images { None } else { displaced }
        }
        Ok(()) => breaker,
    }
}

/// Whether two different images run as one batch give the outputs each gives alone
/// (relative L2 <= 1e-4 per image): the check for a graph that moves the batch off the
/// first axis on the way.
fn images_kept_apart(graph: &Graph, [h, w]: [usize; 2], device: &Device) -> Result<bool> {
    let c = graph.input.channels;
    let n = c * h * w;
    // A blank image and a pattern that differs at every position.
    let pattern: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 251) as f32 / 125.0 - 1.0)
        .collect();
    let images = [vec![0.0; n], pattern];
    let output = |x: Tensor<4>, batch: usize| -> Result<Vec<f32>> {
        let mut env = start(graph, x);
        exec::run(graph, &mut env, 0..graph.nodes.len(), &[], batch)?;
        env.remove(&graph.output)
            .ok_or_else(|| Error::Internal("the output was not computed".into()))?
            .host_floats()
    };
    let tensor = |values: Vec<f32>, batch: usize| {
        Tensor::<4>::from_data(TensorData::new(values, [batch, c, h, w]), device)
    };
    let together = output(tensor(images.concat(), 2), 2)?;
    let per_image = together.len() / 2;
    for (k, image) in images.into_iter().enumerate() {
        let alone = output(tensor(image, 1), 1)?;
        let part = &together[k * per_image..(k + 1) * per_image];
        let diff: f32 = part
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let norm: f32 = alone.iter().map(|a| a * a).sum();
        if alone.len() != per_image || diff.sqrt() > 1e-4 * norm.sqrt().max(1e-30) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The classes and the `[height, width]` of each class's scores of an output of batch-1
/// `shape`: `[1, K]` (or `[1, K, 1, 1]`) is a classifier's, `[1, K, H, W]` with `H·W > 1` a
/// segmenter's (a score per class and pixel); `None` for any other shape.
fn output_layout(shape: &[usize]) -> Option<(usize, [usize; 2])> {
    match *shape {
        [1, k, h, w] if k >= 2 && h * w > 1 => Some((k, [h, w])),
        [1, k, ref rest @ ..] if k >= 2 && rest.iter().all(|&d| d == 1) => Some((k, [1, 1])),
        _ => None,
    }
}

/// An environment holding the images `x` as the graph's input.
fn start(graph: &Graph, x: Tensor<4>) -> Env {
    Env::from([(graph.input.name.clone(), Value::Float(FloatValue::nchw(x)))])
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
        external: &dyn ExternalData,
        device: &Device,
    ) -> Result<Self> {
        Self::load(bytes, external, device, None)
    }

    /// [`OnnxModel::from_bytes_and_data`] explaining the graph's output `output` (by name; `None`:
    /// its first), for a model with several.
    pub fn load(
        bytes: &[u8],
        external: &dyn ExternalData,
        device: &Device,
        output: Option<&str>,
    ) -> Result<Self> {
        let graph = load::parse(bytes, external, device, output)?;
        let h = graph.input.height.unwrap_or(DEFAULT_INPUT_SIZE);
        let w = graph.input.width.unwrap_or(DEFAULT_INPUT_SIZE);
        let blank = Tensor::<4>::zeros([1, graph.input.channels, h, w], device);
        let mut env = start(&graph, blank);
        let mut shapes = HashMap::new();
        let all = 0..graph.nodes.len();
        exec::run_observed(&graph, &mut env, all, &[], 1, &mut |node, v| {
            shapes.insert(node.output.clone(), v.shape());
        })?;
        if graph.constants.contains_key(&graph.output) {
            return Err(Error::NotClassifier(format!(
                "output `{}` is a constant that does not depend on the image",
                graph.output
            )));
        }
        let out_shape = env.get(&graph.output).map(Value::shape).unwrap_or_default();
        // Where the file names its classes, what follows their scores in each anchor is not a
        // class (an instance-segmentation head's masks, a pose head's keypoints).
        let named = graph.metadata.names.as_ref().map(Vec::len);
        let detector = DetectLayout::of(&out_shape, [h, w], named);
        if let (Some(what), Some(d)) = (graph.metadata.extra_values(), &detector)
            && d.extra == 0
        {
            return Err(Error::UnsupportedHead(format!(
                "an Ultralytics `{}` model whose metadata names no usable classes (`names`): where its class scores end and its {what} begin is unknown; re-export it with ultralytics' exporter",
                graph.metadata.task.as_deref().unwrap_or_default()
            )));
        }
        let Some((classes, plane)) =
            output_layout(&out_shape).or_else(|| detector.map(|d| (d.classes, [1, 1])))
        else {
            return Err(Error::NotClassifier(format!(
                "output `{}` has shape {out_shape:?}",
                graph.output
            )));
        };
        let per_image = out_shape.iter().product();
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
        let stem = affine_stem(&graph, &shapes);
        let tokens = tokens::TokenGraph::of(&graph, &shapes);
        Ok(Self {
            graph,
            device: device.clone(),
            input_size: [h, w],
            classes,
            plane,
            detector,
            per_image,
            shapes,
            tokens,
            batch_breaker,
            stem,
            autodiff_only: AtomicBool::new(false),
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
    /// [`OnnxModel::forward`] splits batches, and [`OnnxModel::fit_chunk`] is 1.
    pub fn batch_breaker(&self) -> Option<&str> {
        self.batch_breaker.as_deref()
    }

    /// The default number of path points per chunk for this model (see
    /// [`budget::model_chunk`](crate::budget::model_chunk)), fitted by [`OnnxModel::fit_chunk`].
    pub fn default_chunk(&self) -> usize {
        let sizes = crate::budget::ModelSizes {
            input: self.input_size,
            largest: self.largest_activation(),
            all: self.activation_values(),
        };
        self.fit_chunk(crate::budget::model_chunk(sizes))
    }

    /// `batch`, or 1 for a model whose nodes do not follow a batch (see
    /// [`OnnxModel::batch_breaker`]).
    pub fn fit_chunk(&self, batch: usize) -> usize {
        if self.batch_breaker.is_some() {
            1
        } else {
            batch
        }
    }

    /// The ends of the straight path from baseline `b` to photo `x` (`[1, C, H, W]` each),
    /// with the affine stem run on both when the model has one.
    pub fn path_ends(&self, x: Tensor<4>, b: Tensor<4>) -> Result<PathEnds> {
        let stem = match &self.stem {
            Some((end, name)) => {
                let both = Tensor::cat(vec![b.clone(), x.clone()], 0);
                let out = self.phase("affine stem", || {
                    // The stem's ops are per image (Conv, BatchNormalization, Pad, arithmetic
                    // with constants), so a batch breaker later in the graph does not concern it.
                    let mut env = start(&self.graph, both);
                    exec::run(&self.graph, &mut env, 0..end + 1, &[name], 2)?;
                    match env.remove(name) {
                        Some(Value::Float(f)) if f.rank == 4 => Ok(f.tensor),
                        _ => Err(Error::Backend(format!("stem output `{name}` is not 4-D"))),
                    }
                })?;
                let at_b = out.clone().narrow(0, 0, 1);
                let at_x = out.narrow(0, 1, 1);
                Some((at_b.clone(), at_x.sub(at_b)))
            }
            None => None,
        };
        Ok(PathEnds { x, b, stem })
    }

    /// Runs the path points at `alphas` up to and including the producer of `layer`; returns
    /// the layer's activations and the tensors the rest of the graph still needs. Starts from
    /// the affine stem's output where the stem ends before `layer`.
    pub fn forward_path_to(
        &self,
        ends: &PathEnds,
        alphas: &[f32],
        layer: &str,
    ) -> Result<(Tensor<4>, Env)> {
        let mut at = self.forward_path_to_layers(ends, alphas, &[layer])?;
        Ok(at.remove(0))
    }

    /// [`OnnxModel::forward_path_to`] for several layers in one pass: each layer's activations
    /// and the tensors the rest of the graph needs after it, in the order of `layers`.
    pub fn forward_path_to_layers(
        &self,
        ends: &PathEnds,
        alphas: &[f32],
        layers: &[&str],
    ) -> Result<Vec<(Tensor<4>, Env)>> {
        let first = layers
            .iter()
            .map(|l| self.layer_producer(l))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or(0);
        match (&ends.stem, &self.stem) {
            (Some((at_b, diff)), Some((end, name))) if *end < first => {
                // The activation after the stem, if the layers come later, goes into the
                // same pass over the points (on the host).
                let fused = fusion::activation_after(&self.graph, *end, &(0..first), layers)
                    .and_then(|(at, f)| Some((at, along_on_host(at_b, diff, alphas, Some(f))?)));
                let (name, from, points) = match fused {
                    Some((at, points)) => (self.graph.nodes[at].output.clone(), at + 1, points),
                    None => (name.clone(), end + 1, along(at_b, diff, alphas)),
                };
                let batch = points.dims()[0];
                let env = Env::from([(name, Value::Float(FloatValue::nchw(points)))]);
                self.run_to_layers(env, from, layers, batch)
            }
            _ => self.forward_to_layers(ends.points(alphas), layers),
        }
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

    /// How many nodes of a model exported with a fixed batch of 1 (`Reshape`s to `[1, ...]`,
    /// `Expand`s, `Concat`s of a constant `[1, ...]`) were made to follow the input's batch
    /// instead (so that the path can run several images per pass).
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

    /// The explainable tensors of the graph.
    fn explainable(&self) -> Layers<'_> {
        Layers {
            graph: &self.graph,
            shapes: &self.shapes,
            tokens: &self.tokens,
            classes: self.classes,
            segmenter: self.is_segmenter(),
            detector: self.detector.is_some(),
        }
    }

    /// Every 4-D tensor with spatial size > 1, in graph order: the candidates for a layer.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.explainable().list()
    }

    /// The default layer (see [`Layers::default_with_reason`]).
    pub fn default_layer(&self) -> Option<String> {
        self.default_layer_reason().map(|(name, _)| name)
    }

    /// The default layer and why it was chosen, for `layers`.
    pub fn default_layer_reason(&self) -> Option<(String, String)> {
        self.explainable().default_with_reason()
    }

    /// The default layers and why (see [`Layers::defaults_with_reason`]): one, except for a
    /// detector, whose neck outputs (one per scale) are explained together, their maps averaged.
    pub fn default_layers_reason(&self) -> Option<(Vec<String>, String)> {
        self.explainable().defaults_with_reason()
    }

    /// Checks that `name` is a 4-D tensor of the graph that feeds the output and returns its
    /// batch-1 shape.
    pub fn layer_shape(&self, name: &str) -> Result<Vec<usize>> {
        self.explainable().shape(name)
    }

    /// The index of the node producing `layer`, after [`OnnxModel::layer_shape`]'s checks.
    fn layer_producer(&self, layer: &str) -> Result<usize> {
        self.layer_shape(layer)?;
        self.graph
            .producer(layer)
            .ok_or_else(|| Error::UnknownLayer {
                name: layer.into(),
                hint: String::new(),
            })
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
        let per_image = self.outputs_per_image();
        let n = t.dims().iter().product::<usize>() / per_image;
        Ok(t.reshape([n, per_image]))
    }

    /// The output's `[height, width]` per class: `[1, 1]` for a classifier, the score map's
    /// size for a segmenter (whose output is `[N, classes, height, width]`).
    pub fn output_plane(&self) -> [usize; 2] {
        self.plane
    }

    /// The explained output's name, and every output of the graph.
    pub fn outputs(&self) -> (&str, &[String]) {
        (&self.graph.output, &self.graph.outputs)
    }

    /// Whether the output holds a score per class and pixel (`[N, classes, H, W]`, `H·W > 1`).
    pub fn is_segmenter(&self) -> bool {
        self.plane != [1, 1]
    }

    /// What the exporter wrote in the file (ultralytics' task, class names).
    pub fn metadata(&self) -> &Metadata {
        &self.graph.metadata
    }

    /// A detector's output layout (`[N, 4 + classes (+ extra), anchors]` or `[N, anchors, 5 +
    /// classes (+ extra)]`); `None` for a classifier or a segmenter.
    pub fn detector(&self) -> Option<&DetectLayout> {
        self.detector.as_ref()
    }

    /// Output values per image: the classes times their plane (a detector's: every anchor's
    /// box and scores).
    pub fn outputs_per_image(&self) -> usize {
        self.per_image
    }

    /// Full forward pass: `[N, C, H, W]` normalised images to `[N, classes]` logits (a
    /// segmenter's: `[N, classes·H·W]`, class-major; one image at a time when the model has a
    /// [`OnnxModel::batch_breaker`]).
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let n = x.dims()[0];
        if n > 1 && self.batch_breaker.is_some() {
            let logits = (0..n)
                .map(|i| self.forward(x.clone().narrow(0, i, 1)))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(logits, 0));
        }
        let mut env = start(&self.graph, x);
        self.run_images(&mut env, 0..self.graph.nodes.len(), &[], n)?;
        self.logits(env)
    }

    /// The logits of one image `[1, C, H, W]`, read back to the host.
    pub fn host_logits(&self, x: Tensor<4>) -> Result<Vec<f32>> {
        host_values(self.forward(x)?)
    }

    /// The gradient of the summed `target` logits with respect to the images `x` (`[N, C, H,
    /// W]`): by a reverse pass over the host kernels on Burn's CPU backend where that applies,
    /// else (another device, a model run one image at a time, an op without a host gradient)
    /// by Burn's autodiff.
    pub fn input_gradient(&self, x: Tensor<4>, target: usize) -> Result<Tensor<4>> {
        self.objective_input_gradient(x, &Objective::Logit(target))
    }

    /// [`OnnxModel::input_gradient`] of any [`Objective`] (a segmenter's region score).
    pub fn objective_input_gradient(
        &self,
        x: Tensor<4>,
        objective: &Objective,
    ) -> Result<Tensor<4>> {
        if let Some(g) = self.host_objective_input_gradient(x.clone(), objective)? {
            return Ok(g);
        }
        let leaf = x.autodiff().require_grad();
        let logits = self.phase("input forward (IG)", || self.forward(leaf.clone()))?;
        self.phase("input backward (IG)", || {
            self.target_gradient(logits, &leaf, objective, self.graph.input.name.as_str())
        })
    }

    /// [`OnnxModel::input_gradient`] by the host reverse pass; `Ok(None)` where it does not
    /// apply.
    pub fn host_input_gradient(&self, x: Tensor<4>, target: usize) -> Result<Option<Tensor<4>>> {
        self.host_objective_input_gradient(x, &Objective::Logit(target))
    }

    /// [`OnnxModel::host_input_gradient`] of any [`Objective`].
    fn host_objective_input_gradient(
        &self,
        x: Tensor<4>,
        objective: &Objective,
    ) -> Result<Option<Tensor<4>>> {
        let n = x.dims()[0];
        if !self.host_pass_applies(n) {
            return Ok(None);
        }
        let grads = self.host_gradients(
            start(&self.graph, x),
            (0, n),
            (self.graph.input.name.as_str(), &[]),
            std::slice::from_ref(objective),
            ["input forward (IG)", "input backward (IG)"],
        )?;
        Ok(grads.and_then(|g| g.into_iter().next()?.into_iter().next()?))
    }

    /// Whether the host reverse pass may run on `batch` images: on Burn's plain CPU backend,
    /// one image at a time for a model with a batch breaker, and not once an op without a host
    /// gradient has been met.
    fn host_pass_applies(&self, batch: usize) -> bool {
        is_plain_cpu(&self.device)
            && (batch == 1 || self.batch_breaker.is_none())
            && !self.autodiff_only.load(Ordering::Relaxed)
    }

    /// The gradients of each of `objectives` (summed over the images) with respect to the value
    /// `from` and then to each of `taps`, collected (see [`OnnxModel::host_gradients_each`]):
    /// `Ok(None)` unless every objective was served.
    fn host_gradients(
        &self,
        env: Env,
        from: (usize, usize),
        at: (&str, &[&str]),
        objectives: &[Objective],
        phases: [&str; 2],
    ) -> Result<Option<Vec<Vec<Option<Tensor<4>>>>>> {
        collected(objectives.len(), |each| {
            self.host_gradients_each(env, from, at, objectives, phases, each)
        })
    }

    /// The gradients of each of `objectives` (summed over the images) with respect to the value
    /// `from` and then to each of `taps` (values the pass computes from `from`), by the host
    /// reverse pass ([`OnnxModel::host_pass_applies`]): the graph from node `first` on runs
    /// once on `batch` images from `env`, keeping every value (phase `phases[0]`), then one
    /// reverse pass per objective (phase `phases[1]`), whose gradients go to `each` a group of
    /// objectives at a time (with the first one's index) before the next group's passes start,
    /// so that only a group's are held. On fewer images than threads a group's passes run side
    /// by side, each on a thread alone. Each objective's gradients come as `[from, taps...]`,
    /// `None` for a tap that no gradient reaches (`from`'s is always there). Returns how many
    /// objectives were served, in order: all, or fewer where an op on the way has no host
    /// gradient (the model then takes autodiff from now on) or where the pass does not apply
    /// (none).
    fn host_gradients_each(
        &self,
        mut env: Env,
        (first, batch): (usize, usize),
        (from, taps): (&str, &[&str]),
        objectives: &[Objective],
        [forward, backward]: [&str; 2],
        each: &mut EachGroup,
    ) -> Result<usize> {
        if objectives.is_empty() || !self.host_pass_applies(batch) {
            return Ok(0);
        }
        let range = first..self.graph.nodes.len();
        let steps = self.phase(forward, || {
            exec::run_retaining(&self.graph, &mut env, range, taps, batch)
        })?;
        let output = self.output(&env)?;
        let per_image = self.outputs_per_image();
        // One objective's reverse pass, `None` where an op on the way has no host gradient.
        let pass = |objective: &Objective| -> Result<Option<Vec<Option<LayerGradient>>>> {
            // A detection's seed starts as its few values, boxed; any other is whole (a
            // class's logits or a region reach ops without a box rule first: `Gemm`, `Resize`).
            let values = objective.seed_values(output, per_image)?;
            let seed = match values.map(|v| boxed::Grad::of_values(output, &v)) {
                Some(Ok(seed)) => seed,
                _ => boxed::Grad::Dense(objective.seed(output, per_image)?),
            };
            let grad = self.phase(backward, || {
                backprop::gradient(&self.graph, &env, &steps, seed, from, taps)
            })?;
            // Each gradient as its layer is explained: token gradients as their grid, a
            // detection's box of a plane kept a box.
            let layer = |name: &str, g: &boxed::Grad| -> Result<LayerGradient> {
                let view = self.view(name);
                let g = match view {
                    View::Nchw => g.layer_gradient(),
                    _ => g
                        .dense()
                        .map(|d| LayerGradient::Whole(tokens::grid(view, &d))),
                };
                g.map_err(|e| self.graph.bad(0, e))
            };
            let Some((g, tapped)) = grad else {
                return Ok(None);
            };
            let mut all = vec![Some(layer(from, &g)?)];
            for (tap, t) in taps.iter().zip(tapped) {
                all.push(t.map(|t| layer(tap, &t)).transpose()?);
            }
            Ok(Some(all))
        };
        // Fewer images than threads leave the kernels splitting small pieces of work (a
        // detection's boxes): then several passes at once, each on a thread alone, as many as
        // the gradients' memory budget allows.
        let per_objective: usize = std::iter::once(from)
            .chain(taps.iter().copied())
            .filter_map(|name| match env.get(name) {
                Some(Value::Float(v)) => Some(v.tensor.dims().iter().product::<usize>() * 4),
                _ => None,
            })
            .sum();
        let together = match batch < par::threads() {
            true => (PASSES_PER_THREAD * par::threads()).min(budget::gradient_group(per_objective)),
            false => 1,
        };
        for (c, group) in objectives.chunks(together).enumerate() {
            let grads = match group.len() {
                1 => vec![pass(&group[0])],
                _ => par::each_on_one_thread(group, pass),
            };
            let first = c * together;
            let mut served = Vec::with_capacity(grads.len());
            for grad in grads {
                match grad? {
                    Some(all) => served.push(all),
                    None => {
                        let k = first + served.len();
                        self.autodiff_only.store(true, Ordering::Relaxed);
                        if !served.is_empty() {
                            each(first, served)?;
                        }
                        return Ok(k);
                    }
                }
            }
            each(first, served)?;
        }
        Ok(objectives.len())
    }

    /// The gradients of the summed logits of each of `targets` with respect to `activations`
    /// at `layer` (see [`OnnxModel::layer_gradient`]): on Burn's CPU backend by one forward
    /// pass through the rest of the graph and a host reverse pass per target, where every op
    /// on the way has a host gradient; else by Burn's autodiff, one pass each.
    pub fn layer_gradients(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
        targets: &[usize],
    ) -> Result<Vec<Tensor<4>>> {
        let objectives: Vec<Objective> = targets.iter().map(|&t| Objective::Logit(t)).collect();
        self.objective_gradients(layer, activations, env, &objectives)
    }

    /// FullGrad's gradients of `objective` at the images `x`: with respect to `x`, and at the
    /// output of every convolution and batch normalisation that adds a bias to a 4-D output,
    /// each with that bias, in graph order. On Burn's CPU backend one forward and one reverse
    /// pass on the host kernels (the biased outputs kept out of fused groups); elsewhere (or
    /// for an op without a host gradient) Burn's autodiff, through the rest of the graph from
    /// each biased output in turn.
    pub fn bias_gradients(&self, x: Tensor<4>, objective: &Objective) -> Result<BiasGradients> {
        let biased: Vec<(&str, Vec<f32>)> = self
            .graph
            .nodes
            .iter()
            .filter(|node| self.shapes.get(&node.output).is_some_and(|s| s.len() == 4))
            .filter_map(|node| Some((node.output.as_str(), node.op.channel_bias()?)))
            .filter(|(name, bias)| self.shapes[*name][1] == bias.len())
            .collect();
        if self.host_pass_applies(x.dims()[0])
            && let Some(gradients) = self.host_bias_gradients(x.clone(), objective, &biased)?
        {
            return Ok(gradients);
        }
        let leaf = x.clone().autodiff().require_grad();
        let logits = self.phase("forward (FullGrad)", || self.forward(leaf.clone()))?;
        let input = self.phase("backward (FullGrad)", || {
            self.target_gradient(logits, &leaf, objective, self.graph.input.name.as_str())
        })?;
        let mut layers = Vec::with_capacity(biased.len());
        for (name, bias) in biased {
            let (activations, env) = self.forward_to(x.clone(), name)?;
            match self.layer_gradient(name, &activations, &env, objective) {
                Ok(g) => layers.push((bias, g)),
                Err(Error::LayerUnused { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(BiasGradients { input, layers })
    }

    /// [`OnnxModel::bias_gradients`] by the host reverse pass (outputs no gradient reaches
    /// left out); `Ok(None)` where an op has no host gradient.
    fn host_bias_gradients(
        &self,
        x: Tensor<4>,
        objective: &Objective,
        biased: &[(&str, Vec<f32>)],
    ) -> Result<Option<BiasGradients>> {
        let n = x.dims()[0];
        let taps: Vec<&str> = biased.iter().map(|(name, _)| *name).collect();
        let from = self.graph.input.name.as_str();
        let phases = ["forward (FullGrad)", "backward (FullGrad)"];
        let grads = self.host_gradients(
            start(&self.graph, x),
            (0, n),
            (from, &taps),
            std::slice::from_ref(objective),
            phases,
        )?;
        let Some(mut grads) = grads.and_then(|g| g.into_iter().next()) else {
            return Ok(None);
        };
        let Some(input) = grads.remove(0) else {
            return Ok(None);
        };
        // A biased output no gradient reaches (it does not feed the logits) adds nothing.
        let layers = biased
            .iter()
            .zip(grads)
            .filter_map(|((_, b), g)| Some((b.clone(), g?)))
            .collect();
        Ok(Some(BiasGradients { input, layers }))
    }

    /// [`OnnxModel::layer_gradients`] of any [`Objective`]s (Finer-CAM's weighted differences
    /// too).
    pub fn objective_gradients(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
        objectives: &[Objective],
    ) -> Result<Vec<Tensor<4>>> {
        if let Some(grads) = self.host_layer_gradients(layer, activations, env, objectives)? {
            return Ok(grads);
        }
        objectives
            .iter()
            .map(|o| self.layer_gradient(layer, activations, env, o))
            .collect()
    }

    /// [`OnnxModel::layer_gradients`] by the host reverse pass; `Ok(None)` where it does not
    /// apply.
    pub fn host_layer_gradients(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
        objectives: &[Objective],
    ) -> Result<Option<Vec<Tensor<4>>>> {
        let grads = self.host_head_gradients((layer, activations, env), &[], objectives)?;
        Ok(grads.and_then(|g| g.into_iter().map(|g| g.into_iter().next()?).collect()))
    }

    /// The host reverse pass through the rest of the graph from `layer` (its activations and
    /// `env`), handing out the gradients at `taps` on the way: `[objective][layer, taps...]`
    /// (see [`OnnxModel::host_gradients`]); `Ok(None)` where it does not apply.
    fn host_head_gradients(
        &self,
        at: (&str, &Tensor<4>, &Env),
        taps: &[&str],
        objectives: &[Objective],
    ) -> Result<Option<Vec<Vec<Option<Tensor<4>>>>>> {
        collected(objectives.len(), |each| {
            self.host_head_gradients_each(at, taps, objectives, each)
        })
    }

    /// [`OnnxModel::host_head_gradients`] an objective at a time, as
    /// [`OnnxModel::host_gradients_each`] hands them out; returns how many were served.
    fn host_head_gradients_each(
        &self,
        (layer, activations, env): (&str, &Tensor<4>, &Env),
        taps: &[&str],
        objectives: &[Objective],
        each: &mut EachGroup,
    ) -> Result<usize> {
        let batch = activations.dims()[0];
        if objectives.is_empty() || !self.host_pass_applies(batch) {
            return Ok(0);
        }
        let (first, env, _) = self.head_env(layer, activations, env)?;
        let phases = ["head forward", "head backward"];
        self.host_gradients_each(env, (first, batch), (layer, taps), objectives, phases, each)
    }

    /// Where the rest of the graph after `layer` starts: the first node after its producer, and
    /// `env` with `activations` standing in for the layer (as its tensor, a transformer's tokens
    /// joined back), which is returned too.
    fn head_env(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
    ) -> Result<(usize, Env, FloatValue)> {
        let first = self.layer_producer(layer)? + 1;
        let mut env = env.clone();
        let value = tokens::join(self.view(layer), layer, activations.clone(), &env)?;
        env.insert(layer.to_string(), Value::Float(value.clone()));
        Ok((first, env, value))
    }

    /// [`OnnxModel::objective_gradients`] at several layers (each with its activations and the
    /// `env` [`OnnxModel::forward_to_layers`] returned for it), handed to `each` a group of
    /// objectives at a time: the first one's index in `objectives` and each one's gradient at
    /// every layer, in `at`'s order. On Burn's CPU backend one pass through the rest of the
    /// graph from the earliest layer serves them all (the later layers' gradients are handed
    /// out on the way), and only a group's gradients are held at once (a detector's hundreds
    /// of detections); elsewhere, or where a later layer is not downstream of the earliest, one
    /// pass per layer.
    pub fn objective_gradients_layers(
        &self,
        at: &[(&str, &Tensor<4>, &Env)],
        objectives: &[Objective],
        each: &mut dyn FnMut(usize, Vec<Vec<LayerGradient>>) -> Result<()>,
    ) -> Result<()> {
        let producers = at
            .iter()
            .map(|(l, _, _)| self.layer_producer(l))
            .collect::<Result<Vec<_>>>()?;
        let Some(e) = (0..at.len()).min_by_key(|&i| producers[i]) else {
            return Ok(());
        };
        // A later layer computed from the earliest (recomputed by the pass from it) that no
        // gradient reaches does not move the objective (a detection on another scale): its
        // gradient is 0. One on a parallel branch needs a pass of its own.
        let earliest = at[e].0;
        let downstream = at
            .iter()
            .enumerate()
            .all(|(i, (l, _, _))| i == e || self.graph.ancestors(l).contains(earliest));
        let mut served = 0;
        if downstream {
            // The earliest layer first, then the others as taps.
            let order: Vec<usize> = std::iter::once(e)
                .chain((0..at.len()).filter(|&i| i != e))
                .collect();
            let taps: Vec<&str> = order[1..].iter().map(|&i| at[i].0).collect();
            served = self.host_head_gradients_each(at[e], &taps, objectives, &mut |k, group| {
                let in_layer_order = |grads: Vec<Option<LayerGradient>>| {
                    let mut per_layer: Vec<Option<LayerGradient>> = vec![None; at.len()];
                    for (&i, g) in order.iter().zip(grads) {
                        per_layer[i] = Some(g.unwrap_or_else(|| LayerGradient::zero(at[i].1)));
                    }
                    per_layer.into_iter().flatten().collect()
                };
                each(k, group.into_iter().map(in_layer_order).collect())
            })?;
        }
        // The rest (all, where the shared pass does not apply), a pass per layer, in groups
        // the gradients' memory budget allows.
        let per_objective = at
            .iter()
            .map(|(_, a, _)| a.dims().iter().product::<usize>() * 4)
            .sum();
        let size = budget::gradient_group(per_objective);
        for (c, rest) in objectives[served..].chunks(size).enumerate() {
            let mut per_layer = at
                .iter()
                .map(|(layer, activations, env)| {
                    Ok(self
                        .objective_gradients(layer, activations, env, rest)?
                        .into_iter()
                        .map(LayerGradient::Whole))
                })
                .collect::<Result<Vec<_>>>()?;
            let group = (0..rest.len())
                .map(|_| {
                    per_layer
                        .iter_mut()
                        .map(Iterator::next)
                        .collect::<Option<_>>()
                })
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Internal("a layer's gradient is missing".into()))?;
            each(served + c * size, group)?;
        }
        Ok(())
    }

    /// ShapleyCAM's `H·A`: the Hessian of `objective` (summed over the images) with respect to
    /// `activations` at `layer`, times the activations themselves (PyTorch's double backward
    /// `autograd.grad(dS/dA, A, grad_outputs=A)`), from the `env` that
    /// [`OnnxModel::forward_to`] or [`OnnxModel::forward_path_to`] returned. By forward mode
    /// over the host reverse pass (`onnx::hessian`), on Burn's CPU backend only: elsewhere, or
    /// through an op without a second-order rule, [`Error::MethodUnavailable`].
    pub fn layer_hessian_product(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
        objective: &Objective,
    ) -> Result<Tensor<4>> {
        if !is_plain_cpu(&self.device) {
            return Err(Error::MethodUnavailable(
                "the Hessian-vector product (ShapleyCAM's) runs on the CPU backend only".into(),
            ));
        }
        let batch = activations.dims()[0];
        if batch > 1 && self.batch_breaker.is_some() {
            // The model runs one image at a time: so does its product.
            let each = (0..batch)
                .map(|i| {
                    let env = env
                        .iter()
                        .map(|(name, v)| (name.clone(), one_image_repeated(v, batch, i, 1)))
                        .collect();
                    let a = activations.clone().narrow(0, i, 1);
                    self.layer_hessian_product(layer, &a, &env, objective)
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(each, 0));
        }
        let (first, mut env, value) = self.head_env(layer, activations, env)?;
        let range = first..self.graph.nodes.len();
        let steps = self.phase("head forward (Hessian)", || {
            exec::run_retaining_unfused(&self.graph, &mut env, range, batch)
        })?;
        let output = self.output(&env)?;
        let classes = self.outputs_per_image();
        let seed = objective.seed(output, classes)?;
        let seed_tangent = |t: &FloatValue| objective.seed_tangent(t, classes);
        let product = self.phase("head Hessian-vector product", || {
            hessian::hessian_vector(
                &self.graph,
                &env,
                &steps,
                (seed, &seed_tangent),
                layer,
                value,
            )
        })?;
        Ok(tokens::grid(self.view(layer), &product))
    }

    /// The gradient of `objective` (summed over the images) with respect to `activations` at
    /// `layer` (from [`OnnxModel::forward_to`] or [`OnnxModel::forward_path_to`], with the `env`
    /// it returned), by Burn's autodiff through the rest of the graph.
    pub fn layer_gradient(
        &self,
        layer: &str,
        activations: &Tensor<4>,
        env: &Env,
        objective: &Objective,
    ) -> Result<Tensor<4>> {
        let leaf = activations.clone().autodiff().require_grad();
        let logits = self.phase("head forward", || {
            self.forward_from(env.clone(), layer, leaf.clone())
        })?;
        self.phase("head backward", || {
            self.target_gradient(logits, &leaf, objective, layer)
        })
    }

    /// The gradient of `objective` (summed over the rows) with respect to the tracked `leaf`
    /// (the tensor `name`).
    fn target_gradient(
        &self,
        logits: Tensor<2>,
        leaf: &Tensor<4>,
        objective: &Objective,
        name: &str,
    ) -> Result<Tensor<4>> {
        let grads = objective.of_logits(logits).backward();
        leaf.grad(&grads).ok_or_else(|| Error::LayerUnused {
            name: name.into(),
            output: self.graph.output.clone(),
        })
    }

    /// Runs the graph up to and including the producer of `layer`; returns that layer's
    /// activations and the tensors the rest of the graph still needs.
    pub fn forward_to(&self, x: Tensor<4>, layer: &str) -> Result<(Tensor<4>, Env)> {
        let mut at = self.forward_to_layers(x, &[layer])?;
        Ok(at.remove(0))
    }

    /// [`OnnxModel::forward_to`] for several layers in one pass, in the order of `layers`.
    pub fn forward_to_layers(
        &self,
        x: Tensor<4>,
        layers: &[&str],
    ) -> Result<Vec<(Tensor<4>, Env)>> {
        let batch = x.dims()[0];
        self.run_to_layers(start(&self.graph, x), 0, layers, batch)
    }

    /// Runs the graph from node `from` on `env` through the producer of each of `layers` in
    /// turn: each layer's activations with the tensors the graph needs after it (as
    /// [`OnnxModel::forward_to`] returns them), in the order of `layers`.
    fn run_to_layers(
        &self,
        mut env: Env,
        from: usize,
        layers: &[&str],
        batch: usize,
    ) -> Result<Vec<(Tensor<4>, Env)>> {
        let mut order: Vec<(usize, usize)> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| Ok((self.layer_producer(l)?, i)))
            .collect::<Result<_>>()?;
        order.sort_unstable();
        let mut out: Vec<Option<(Tensor<4>, Env)>> = vec![None; layers.len()];
        let mut next = from;
        for (k, &(p, i)) in order.iter().enumerate() {
            // A later layer's pass goes on from this one: keep it, and what it reads.
            let last = k + 1 == order.len();
            self.run_images(&mut env, next..p + 1, &[layers[i]], batch)?;
            next = p + 1;
            out[i] = Some(if last {
                self.take_layer(std::mem::take(&mut env), layers[i])?
            } else {
                self.take_layer(env.clone(), layers[i])?
            });
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| Error::Internal("a layer was not reached".into())))
            .collect()
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
        exec::run(&self.graph, env, range, keep, batch)
    }

    /// How `layer` is explained as `[N, C, h, w]`: as it is, or as the grid of its patch
    /// tokens.
    fn view(&self, layer: &str) -> View {
        self.tokens
            .view(&self.graph, &self.shapes, layer)
            .unwrap_or(View::Nchw)
    }

    /// Takes `layer` out of `env`, as the `[N, C, h, w]` tensor its view explains (a token
    /// layer's leading tokens stay in `env`).
    fn take_layer(&self, mut env: Env, layer: &str) -> Result<(Tensor<4>, Env)> {
        let view = self.view(layer);
        match env.remove(layer) {
            Some(Value::Float(f)) if f.rank == view.rank() => {
                let grid = tokens::split(view, layer, f, &mut env);
                Ok((grid, env))
            }
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
        let value = tokens::join(self.view(layer), layer, activation, &env)?;
        env.insert(layer.to_string(), Value::Float(value));
        self.run_images(&mut env, p + 1..self.graph.nodes.len(), &[], batch)?;
        self.logits(env)
    }
}

impl OnnxModel {
    /// The `objective` (a class's logit) for each of `activations` (`[n, K, h, w]`) standing in for image
    /// `point` of the batch whose rest-of-graph tensors are `env` (from
    /// [`OnnxModel::forward_to`] or [`OnnxModel::forward_path_to`] on `points` images): every
    /// float of that batch in `env` is narrowed to image `point` and repeated. Shape arithmetic
    /// in `env` (integers from `Shape` before the layer) holds `points` as the batch, so where
    /// `env` has any, the copies go through in groups of exactly `points` (the last group
    /// padded with repeats of its last copy, whose scores are dropped); one at a time where the
    /// model has a [`OnnxModel::batch_breaker`].
    pub fn head_scores(
        &self,
        (layer, env, points): (&str, &Env, usize),
        point: usize,
        activations: Tensor<4>,
        objective: &Objective,
    ) -> Result<Vec<f32>> {
        let n = activations.dims()[0];
        let shapes_fix_batch = env.values().any(|v| matches!(v, Value::Int(_)));
        let group = match (self.batch_breaker.is_some(), shapes_fix_batch) {
            (true, true) if points > 1 => {
                return Err(Error::Backend(
                    "the model runs one image at a time, yet its shape arithmetic holds a batch: explain one path point per chunk (`batch` 1)".into(),
                ));
            }
            (true, _) => 1,
            (false, true) => points,
            (false, false) => n,
        };
        let mut scores = Vec::with_capacity(n);
        let mut first = 0;
        while first < n {
            let take = group.min(n - first);
            let mut copies = activations.clone().narrow(0, first, take);
            if take < group {
                let last = copies
                    .clone()
                    .narrow(0, take - 1, 1)
                    .repeat_dim(0, group - take);
                copies = Tensor::cat(vec![copies, last], 0);
            }
            let env = env
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        one_image_repeated(value, points, point, group),
                    )
                })
                .collect();
            let logits = self.forward_from(env, layer, copies)?;
            scores.extend(
                host_values(objective.per_image(logits))?
                    .into_iter()
                    .take(take),
            );
            first += take;
        }
        Ok(scores)
    }
}

/// `value` with its image `point` of `points` repeated `n` times, where its first logical axis
/// is the batch (a float of rank 2 to 4 whose first axis has `points` entries); else `value`.
fn one_image_repeated(value: &Value, points: usize, point: usize, n: usize) -> Value {
    match value {
        Value::Float(f) if (2..=4).contains(&f.rank) && f.shape()[0] == points => {
            let axis = MAX_RANK - f.rank;
            let one = f.tensor.clone().narrow(axis, point, 1);
            Value::Float(f.with_tensor(one.repeat_dim(axis, n)))
        }
        other => other.clone(),
    }
}

/// Runs a whole graph once on a 4-D input and returns its output's values and shape, without
/// the classifier checks of [`OnnxModel`] (for operator tests and debugging).
pub fn run_graph(
    bytes: &[u8],
    device: &Device,
    input: Tensor<4>,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let graph = load::parse(bytes, &external::NoExternalData, device, None)?;
    let batch = input.dims()[0];
    let mut env = start(&graph, input);
    exec::run(&graph, &mut env, 0..graph.nodes.len(), &[], batch)?;
    let out = env.remove(&graph.output).ok_or_else(|| {
        Error::NotClassifier(format!("output `{}` was not computed", graph.output))
    })?;
    Ok((out.host_floats()?, out.shape()))
}

#[cfg(test)]
mod tests {
    use super::output_layout;

    #[test]
    fn outputs_are_classifiers_segmenters_or_neither() {
        assert_eq!(output_layout(&[1, 10]), Some((10, [1, 1])));
        assert_eq!(output_layout(&[1, 10, 1, 1]), Some((10, [1, 1])));
        assert_eq!(output_layout(&[1, 10, 1]), Some((10, [1, 1])));
        assert_eq!(output_layout(&[1, 10, 1, 1, 1]), Some((10, [1, 1])));
        assert_eq!(output_layout(&[1, 21, 224, 224]), Some((21, [224, 224])));
        assert_eq!(output_layout(&[1, 21, 1, 7]), Some((21, [1, 7])));
        assert_eq!(output_layout(&[1, 7, 4]), None);
        assert_eq!(output_layout(&[1, 1]), None);
        assert_eq!(output_layout(&[2, 10]), None);
        assert_eq!(output_layout(&[1, 4, 2, 3, 5]), None);
    }
}
