//! Which tensors of a loaded graph can be explained, and the default one: the 4-D tensor the
//! network's global pooling reads; in a vision transformer, the tokens its last attention
//! block reads; failing both, the last activation after a convolution. A documented rule
//! that `igcam-wgpu layers` explains.

use std::collections::HashMap;

use super::graph::Graph;
use super::tokens::{View, token_view};
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
    /// The number of classes of the output.
    pub classes: usize,
    /// Whether the output scores every class at every pixel.
    pub segmenter: bool,
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
                let explained_as = match self.tokens(&n.output) {
                    Some(View::Tokens { h, w, .. }) => vec![1, shape[2], h, w],
                    _ => shape.clone(),
                };
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
    pub fn default_with_reason(&self) -> Option<(String, String)> {
        if self.segmenter
            && let Some(widest) = self.widest_feature_map()
        {
            return Some(widest);
        }
        self.pooled_features()
            .or_else(|| self.attention_input())
            .or_else(|| self.last_activation())
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
        token_view(self.graph, self.shapes, tensor)
    }

    /// The token tensor the last attention block's projections read (see
    /// [`Layers::default_with_reason`]).
    fn attention_input(&self) -> Option<(String, String)> {
        let nodes = &self.graph.nodes;
        // An attention's softmax: over the last axis of a `[.., tokens, tokens]` score map (an
        // output softmax over the classes is not one).
        let softmax = nodes.iter().rposition(|n| {
            n.op_type == "Softmax"
                && self.shapes.get(&n.output).is_some_and(|s| {
                    s.len() >= 3 && s[s.len() - 1] == s[s.len() - 2] && s[s.len() - 1] > 1
                })
        })?;
        let read_by_projection = |tensor: &str| {
            nodes[..softmax].iter().any(|n| {
                matches!(n.op_type.as_str(), "MatMul" | "Gemm")
                    && n.inputs.iter().any(|i| i == tensor)
            })
        };
        let node = nodes[..softmax]
            .iter()
            .rev()
            .find(|n| self.tokens(&n.output).is_some() && read_by_projection(&n.output))?;
        let Some(View::Tokens { leading, h, w }) = self.tokens(&node.output) else {
            return None;
        };
        Some((
            node.output.clone(),
            format!(
                "the tokens the last attention block's projections read (its first normalisation, `{}`), as the {h}×{w} patch grid, without the {leading} leading token(s)",
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
            Some(View::Tokens { h, w, .. }) => vec![shape[0], shape[2], h, w],
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
