//! Transformer tokens as an image grid. A vision transformer's block reads and writes tokens
//! `[N, p + h·w, C]`: `p` leading class, distillation or register tokens, then one token per
//! patch in row-major order. Such a tensor is explained as the `h × w` grid `[N, C, h, w]` of
//! its patch tokens, the leading tokens left out, as pytorch-grad-cam's `reshape_transform`
//! does for ViT. The grid is read from the patch embedding (the last convolution before the
//! tensor whose output has `h·w` positions, at most [`MAX_LEADING_TOKENS`] fewer than the
//! tokens), never guessed from a square root. A hierarchical transformer (Swin) halves that
//! grid at each stage (its patch merging) and keeps its tokens channels-last, `[N, h, w, C]`
//! (timm) or `[N, h·w, C]`: a stage's grid is the embedding's divided by a power of two, and a
//! `[N, h, w, C]` is read as channels-last only in a graph with attention that moves the
//! embedding's channels last (a `Transpose` from `[N, C, h, w]` to `[N, h, w, C]`).

use std::collections::HashMap;

use burn::tensor::Tensor;

use super::graph::{Env, Graph};
use super::value::{FloatValue, Value};
use crate::error::{Error, Result};

/// The most leading (class, distillation, register) tokens a token tensor may carry.
pub const MAX_LEADING_TOKENS: usize = 16;

/// How an explained layer's tensor is seen as `[N, C, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// A 4-D `[N, C, H, W]` feature map, as it is.
    Nchw,
    /// Tokens `[N, leading + h·w, C]`: the patch tokens as an `h × w` grid.
    Tokens {
        /// Tokens before the patch tokens (left out of the map).
        leading: usize,
        /// Grid height.
        h: usize,
        /// Grid width.
        w: usize,
    },
    /// A channels-last token grid `[N, h, w, C]` (Swin's blocks in timm).
    ChannelsLast {
        /// Grid height.
        h: usize,
        /// Grid width.
        w: usize,
    },
}

impl View {
    /// The rank of the tensors seen this way.
    pub fn rank(self) -> usize {
        match self {
            View::Tokens { .. } => 3,
            View::Nchw | View::ChannelsLast { .. } => 4,
        }
    }

    /// The `[N, C, h, w]` shape a tensor of `shape` is explained as.
    pub fn explained(self, shape: &[usize]) -> Vec<usize> {
        match self {
            View::Nchw => shape.to_vec(),
            View::Tokens { h, w, .. } => vec![shape[0], shape[2], h, w],
            View::ChannelsLast { h, w } => vec![shape[0], shape[3], h, w],
        }
    }
}

/// The largest factor a hierarchical transformer's stages shrink the patch grid by.
const MAX_STAGE_FACTOR: usize = 32;

/// The grids of the stages of a patch embedding's `h0 × w0` grid: itself, then halved while
/// both sides divide, down to [`MAX_STAGE_FACTOR`].
fn stage_grids(h0: usize, w0: usize) -> impl Iterator<Item = (usize, usize)> {
    std::iter::successors(Some(1usize), |s| Some(s * 2))
        .take_while(|&s| s <= MAX_STAGE_FACTOR)
        .filter(move |&s| h0.is_multiple_of(s) && w0.is_multiple_of(s))
        .map(move |s| (h0 / s, w0 / s))
}

/// Whether the graph has an attention: a `Softmax` over the last axis of a `[.., tokens,
/// tokens]` score map (an output softmax over the classes is not one).
pub fn is_attention(shape: &[usize]) -> bool {
    let r = shape.len();
    r >= 3 && shape[r - 1] == shape[r - 2] && shape[r - 1] > 1
}

/// What [`TokenGraph::view`] reads from a graph, found once (a view per tensor stays cheap in
/// a graph of 200 000 nodes).
#[derive(Clone, Debug, Default)]
pub struct TokenGraph {
    /// The convolutions, in graph order.
    convs: Vec<usize>,
    /// The `Transpose`s from `[1, C, h, w]` to `[1, h, w, C]`, in graph order.
    to_channels_last: Vec<usize>,
    /// Whether the graph has an attention ([`is_attention`]).
    attention: bool,
}

impl TokenGraph {
    /// The facts of `graph`, whose tensors have the batch-1 `shapes`.
    pub fn of(graph: &Graph, shapes: &HashMap<String, Vec<usize>>) -> Self {
        let shape = |t: &str| shapes.get(t).map_or(&[][..], Vec::as_slice);
        let indices = |keep: &dyn Fn(&super::graph::Node) -> bool| {
            (graph.nodes.iter().enumerate())
                .filter(|(_, n)| keep(n))
                .map(|(i, _)| i)
                .collect()
        };
        Self {
            convs: indices(&|n| n.op_type == "Conv"),
            to_channels_last: indices(&|n| {
                let input = n.inputs.first().map_or(&[][..], |i| shape(i));
                n.op_type == "Transpose"
                    && matches!((input, shape(&n.output)),
                        (&[1, c, h, w], &[1, h2, w2, c2]) if (h, w, c) == (h2, w2, c2))
            }),
            attention: graph
                .nodes
                .iter()
                .any(|n| n.op_type == "Softmax" && is_attention(shape(&n.output))),
        }
    }

    /// The token view of `tensor` (its batch-1 shape in `shapes`), if it is a rank-3 token
    /// tensor whose patch grid (or one of its stages') a convolution before it gives, or, in a
    /// graph with attention that moved that convolution's output channels-last, a `[1, h, w,
    /// C]` grid of such a stage.
    pub fn view(
        &self,
        graph: &Graph,
        shapes: &HashMap<String, Vec<usize>>,
        tensor: &str,
    ) -> Option<View> {
        let shape = shapes.get(tensor)?.as_slice();
        let producer = graph.producer(tensor)?;
        if !matches!(*shape, [1, _, c] | [1, _, _, c] if c >= 2) {
            return None;
        }
        let before = self.convs.partition_point(|&c| c < producer);
        let conv = *self.convs[..before].last()?;
        let &[1, _, h0, w0] = shapes.get(&graph.nodes[conv].output)?.as_slice() else {
            return None;
        };
        let mut grids = stage_grids(h0, w0).filter(|&(h, w)| h * w > 1);
        match *shape {
            [1, tokens, _] => grids.enumerate().find_map(|(stage, (h, w))| {
                // Leading tokens at the embedding's own grid only (ViT); the stages have none.
                let leading = tokens.checked_sub(h * w)?;
                (leading == 0 || (stage == 0 && leading <= MAX_LEADING_TOKENS))
                    .then_some(View::Tokens { leading, h, w })
            }),
            [1, h, w, _] if self.attention && grids.any(|g| g == (h, w)) => {
                let moved = self.to_channels_last.partition_point(|&t| t < conv);
                let moved = self
                    .to_channels_last
                    .get(moved)
                    .is_some_and(|&t| t < producer);
                moved.then_some(View::ChannelsLast { h, w })
            }
            _ => None,
        }
    }
}

/// The key under which [`split`] keeps a token layer's leading tokens in the environment
/// (no ONNX tensor name holds a NUL).
pub fn leading_key(layer: &str) -> String {
    format!("{layer}\0leading tokens")
}

/// The layer's value `value` as the `[N, C, h, w]` tensor its view explains; for tokens, the
/// leading tokens are put into `env` (see [`leading_key`]) so that [`join`] can restore them.
pub fn split(view: View, layer: &str, value: FloatValue, env: &mut Env) -> Tensor<4> {
    match view {
        View::Nchw => value.tensor,
        View::ChannelsLast { .. } => grid(view, &value),
        View::Tokens { leading, .. } => {
            if leading > 0 {
                let [_, n, _, c] = value.tensor.dims();
                let lead = value.tensor.clone().narrow(2, 0, leading);
                let lead = FloatValue::new(lead, &[n, leading, c]);
                env.insert(leading_key(layer), Value::Float(lead));
            }
            grid(view, &value)
        }
    }
}

/// The `[N, C, h, w]` grid of a value of the layer's logical shape (the tensor itself, or its
/// gradient).
pub fn grid(view: View, value: &FloatValue) -> Tensor<4> {
    match view {
        View::Nchw => value.tensor.clone(),
        View::ChannelsLast { .. } => value.tensor.clone().permute([0, 3, 1, 2]),
        View::Tokens { leading, h, w } => {
            let [_, n, _, c] = value.tensor.dims();
            value
                .tensor
                .clone()
                .narrow(2, leading, h * w)
                .reshape([n, h, w, c])
                .permute([0, 3, 1, 2])
        }
    }
}

/// The layer's value from its `[N, C, h, w]` grid and the leading tokens [`split`] kept in
/// `env`: the inverse of [`split`]. Differentiable, so a tracked grid yields tracked tokens.
pub fn join(view: View, layer: &str, grid: Tensor<4>, env: &Env) -> Result<FloatValue> {
    match view {
        View::Nchw => Ok(FloatValue::nchw(grid)),
        View::ChannelsLast { .. } => Ok(FloatValue::nchw(grid.permute([0, 2, 3, 1]))),
        View::Tokens { leading, h, w } => {
            let [n, c, _, _] = grid.dims();
            let patches = grid.permute([0, 2, 3, 1]).reshape([1, n, h * w, c]);
            let tokens = match env.get(&leading_key(layer)) {
                _ if leading == 0 => patches,
                Some(Value::Float(lead)) => Tensor::cat(vec![lead.tensor.clone(), patches], 2),
                _ => {
                    return Err(Error::Internal(format!(
                        "the leading tokens of layer `{layer}` were not kept"
                    )));
                }
            };
            Ok(FloatValue::new(tokens, &[n, leading + h * w, c]))
        }
    }
}
