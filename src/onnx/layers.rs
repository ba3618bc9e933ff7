//! Which tensors of a loaded graph can be explained, and the default one: the 4-D tensor the
//! network's global pooling reads; in a vision transformer, the tokens its last attention
//! block reads; failing both, the last activation after a convolution. A documented rule
//! that `igcam-wgpu layers` explains.

use std::collections::{HashMap, HashSet};

use super::graph::Graph;
use super::tokens::{TokenGraph, View, is_attention};
use crate::error::{Error, Result};

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
    "Swish",
    "Tanh",
];

/// Op types that only move values (a transformer's token plumbing between its normalisation
/// and its projections).
const MOVES_VALUES: &[&str] = &[
    "Reshape",
    "Transpose",
    "Slice",
    "Concat",
    "Pad",
    "Identity",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
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
    /// The `[1, C, h, w]` shape it is explained at: its shape, or for transformer tokens the
    /// grid of the patch tokens.
    pub explained_as: Vec<usize>,
}

/// The explainable tensors of a graph, from the batch-1 shape of every node's output.
pub struct Layers<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// Every node output's shape for one image.
    pub shapes: &'a HashMap<String, Vec<usize>>,
    /// What the token views read from the graph.
    pub tokens: &'a TokenGraph,
    /// The number of classes of the output.
    pub classes: usize,
    /// Whether the output scores every class at every pixel.
    pub segmenter: bool,
    /// Whether the output is a YOLO head's boxes and scores.
    pub detector: bool,
}

impl Layers<'_> {
    /// Every 4-D tensor with spatial size > 1 and every token tensor with a patch grid, in graph
    /// order: the candidates for `--layer`.
    pub fn list(&self) -> Vec<LayerInfo> {
        self.graph
            .nodes
            .iter()
            .filter(|n| self.is_candidate(&n.output))
            .map(|n| {
                let shape = self.shapes[&n.output].clone();
                let explained_as = self
                    .tokens(&n.output)
                    .map_or(shape.clone(), |v| v.explained(&shape));
                LayerInfo {
                    name: n.output.clone(),
                    op_type: n.op_type.clone(),
                    shape,
                    explained_as,
                }
            })
            .collect()
    }

    /// The default layer: the 4-D tensor the network's global pooling reads, i.e. the output
    /// of the last feature block (ResNet `layer4`, EfficientNet's last SiLU `Mul`, GoogLeNet's
    /// last `Concat`; before a 1×1-convolution classifier as in SqueezeNet, that classifier's
    /// input). Without a global pooling (VGG): the output of the last activation after a
    /// convolution with spatial size > 1 (`features.29`); failing that, the last 4-D candidate.
    /// Returns the tensor's name and why it was chosen.
    ///
    /// In a vision transformer (no global pooling of a 4-D map): the tokens the last attention
    /// block's projections read, i.e. its first normalisation's output, which pytorch-grad-cam's
    /// ViT and Swin examples explain (`blocks[-1].norm1`): the last token tensor before the last
    /// attention `Softmax` (over a `[.., tokens, tokens]` score map) that a `MatMul` or `Gemm` reads. The last block's own output would not do: only
    /// the class token reaches the classifier from there, so every patch token's gradient is 0.
    ///
    /// In a segmenter: the widest feature map (most channels; the last on ties) produced by an
    /// activation, a product (swish) or a sum, i.e. the backbone's output that the segmentation
    /// head reads (FCN's and DeepLabV3's `backbone.layer4`, LR-ASPP's high-level features), as
    /// pytorch-grad-cam's segmentation tutorial explains.
    ///
    /// In a detector: several layers, see [`Layers::defaults_with_reason`]; this is the last.
    pub fn default_with_reason(&self) -> Option<(String, String)> {
        let (mut layers, why) = self.defaults_with_reason()?;
        Some((layers.pop()?, why))
    }

    /// The default layers: [`Layers::default_with_reason`]'s one, except in a detector, whose
    /// head reads several scales: the neck outputs, one per scale ([`Layers::detection_neck`]),
    /// whose maps are averaged.
    pub fn defaults_with_reason(&self) -> Option<(Vec<String>, String)> {
        if self.detector
            && let Some(neck) = self.detection_neck()
        {
            return Some(neck);
        }
        self.single_default().map(|(l, why)| (vec![l], why))
    }

    /// The one default layer of a classifier or a segmenter.
    fn single_default(&self) -> Option<(String, String)> {
        if self.segmenter
            && let Some(widest) = self.widest_feature_map()
        {
            return Some(widest);
        }
        self.pooled_features()
            .or_else(|| self.attention_input())
            .or_else(|| self.last_activation())
    }

    /// A detector's neck outputs, one per scale, in graph order. The head's outputs are the
    /// feature maps the output is flattened from: 4-D maps (spatial size > 1) the output
    /// depends on whose every reader makes something else (ultralytics' box and class
    /// convolutions reshaped to `[N, 64, h·w]` and `[N, C, h·w]`, YOLOv5's convolution
    /// reshaped to `[N, 3, 5 + C, h, w]`), those nearest the input (not the DFL's softmax map
    /// that comes after them). For each spatial size among them, the neck output is the last
    /// tensor that every one of their nodes' inputs comes from: what both the box and the
    /// class branches read (YOLOv8/11's `model.15`, `.18`, `.21` outputs), or the one
    /// convolution's input (YOLOv5's `Detect.m[i]`).
    fn detection_neck(&self) -> Option<(Vec<String>, String)> {
        let nodes = &self.graph.nodes;
        let map = |t: &str| {
            self.shapes
                .get(t)
                .is_some_and(|s| s.len() == 4 && s[2] * s[3] > 1)
        };
        let needed = self.graph.ancestors(&self.graph.output);
        let flattened: Vec<&str> = nodes
            .iter()
            .map(|n| n.output.as_str())
            .filter(|t| map(t) && needed.contains(*t))
            .filter(|t| {
                let mut readers = nodes.iter().filter(|n| n.inputs.iter().any(|i| i == t));
                readers.all(|r| !map(&r.output))
            })
            .collect();
        let heads: Vec<&str> = flattened
            .iter()
            .copied()
            .filter(|t| {
                let before = self.graph.ancestors(t);
                !flattened.iter().any(|o| o != t && before.contains(*o))
            })
            .collect();
        let mut sizes: Vec<[usize; 2]> = Vec::new();
        for t in &heads {
            let size = [self.shapes[*t][2], self.shapes[*t][3]];
            if !sizes.contains(&size) {
                sizes.push(size);
            }
        }
        if sizes.is_empty() {
            return None;
        }
        let mut neck = Vec::new();
        for size in &sizes {
            // What each of this scale's head nodes reads, with everything it comes from.
            let inputs: Vec<HashSet<String>> = heads
                .iter()
                .filter(|t| self.shapes[**t][2..] == size[..])
                .filter_map(|t| self.graph.producer(t))
                .flat_map(|p| &nodes[p].inputs)
                .filter(|i| self.graph.producer(i).is_some())
                .map(|i| self.graph.ancestors(i))
                .collect();
            let shared = nodes.iter().rposition(|n| {
                self.is_candidate(&n.output) && inputs.iter().all(|a| a.contains(&n.output))
            })?;
            neck.push(nodes[shared].output.clone());
        }
        let sizes: Vec<String> = sizes.iter().map(|[h, w]| format!("{h}×{w}")).collect();
        Some((
            neck,
            format!(
                "the neck outputs the detection head reads, one per scale ({}): at each, the last tensor all the head's branches come from; the map is their mean",
                sizes.join(", ")
            ),
        ))
    }

    /// A 4-D tensor with spatial size > 1, or a token tensor with a patch grid.
    fn is_candidate(&self, tensor: &str) -> bool {
        self.shapes
            .get(tensor)
            .is_some_and(|s| s.len() == 4 && s[2] * s[3] > 1)
            || self.tokens(tensor).is_some()
    }

    /// A segmenter's default layer (see [`Layers::default_with_reason`]).
    fn widest_feature_map(&self) -> Option<(String, String)> {
        let node = self
            .graph
            .nodes
            .iter()
            .filter(|n| {
                let op = n.op_type.as_str();
                (ACTIVATIONS.contains(&op) || op == "Mul" || op == "Add")
                    && self.shapes.get(&n.output).is_some_and(|s| s.len() == 4)
                    && self.is_candidate(&n.output)
            })
            .max_by_key(|n| self.shapes[&n.output][1])?;
        // `max_by_key` keeps the last of equals: the deepest of the widest.
        let channels = self.shapes[&node.output][1];
        Some((
            node.output.clone(),
            format!(
                "the widest feature map ({channels} channels, the last such): the backbone's output the segmentation head reads"
            ),
        ))
    }

    /// The token view of `tensor`, if it is a token tensor with a patch grid.
    fn tokens(&self, tensor: &str) -> Option<View> {
        self.tokens.view(self.graph, self.shapes, tensor)
    }

    /// The token tensor the last attention block's projections read (see
    /// [`Layers::default_with_reason`]): directly, or through ops that only move values
    /// (Swin's cyclic shift and window partition), made by an op that computes (the
    /// normalisation, not one of those moves).
    fn attention_input(&self) -> Option<(String, String)> {
        let nodes = &self.graph.nodes;
        let softmax = nodes.iter().rposition(|n| {
            n.op_type == "Softmax" && self.shapes.get(&n.output).is_some_and(|s| is_attention(s))
        })?;
        let before = &nodes[..softmax];
        let moves = |op: &str| MOVES_VALUES.contains(&op);
        // Weights: computed from constants only (not from the image).
        let weights = |t: &str| {
            t != self.graph.input.name
                && self.graph.ancestors(t).iter().all(|a| {
                    self.graph
                        .producer(a)
                        .is_none_or(|p| nodes[p].inputs.iter().all(|i| *i != self.graph.input.name))
                })
        };
        let read_by_projection = |tensor: &str| {
            let mut frontier = vec![tensor];
            let mut seen = HashSet::new();
            while let Some(t) = frontier.pop() {
                for n in before.iter().filter(|n| n.inputs.iter().any(|i| i == t)) {
                    let projection = matches!(n.op_type.as_str(), "MatMul" | "Gemm")
                        && n.inputs.iter().any(|i| i != t && weights(i));
                    if projection {
                        return true;
                    }
                    if moves(&n.op_type) && seen.insert(n.output.as_str()) {
                        frontier.push(n.output.as_str());
                    }
                }
            }
            false
        };
        let (node, view) = before.iter().rev().find_map(|n| {
            let view = self.tokens(&n.output).filter(|_| !moves(&n.op_type))?;
            read_by_projection(&n.output).then_some((n, view))
        })?;
        let grid = match view {
            View::Tokens { leading, h, w } => {
                format!("as the {h}×{w} patch grid, without the {leading} leading token(s)")
            }
            View::ChannelsLast { h, w } => {
                format!("as the {h}×{w} grid of its channels-last tokens")
            }
            View::Nchw => return None,
        };
        Some((
            node.output.clone(),
            format!(
                "the tokens the last attention block's projections read (its first normalisation, `{}`), {grid}",
                node.name
            ),
        ))
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
                && i.len() == 4
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
        let layers = self.list();
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

    /// Checks that `name` is a 4-D tensor or a token tensor of the graph and returns the
    /// batch-1 shape it is explained at (`[1, C, h, w]` for tokens).
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let Some(shape) = self
            .graph
            .producer(name)
            .and_then(|_| self.shapes.get(name))
        else {
            if self.graph.left_out.contains(name) {
                return Err(Error::LayerUnused {
                    name: name.into(),
                    output: self.graph.output.clone(),
                });
            }
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
        let grid = match self.tokens(name) {
            Some(view) => view.explained(shape),
            _ if shape.len() == 4 => shape.clone(),
            _ => {
                return Err(Error::LayerNot4d {
                    name: name.into(),
                    shape: shape.clone(),
                });
            }
        };
        if !self.graph.feeds_output(name) {
            return Err(Error::LayerUnused {
                name: name.into(),
                output: self.graph.output.clone(),
            });
        }
        Ok(grid)
    }
}
