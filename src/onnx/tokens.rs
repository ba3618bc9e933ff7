//! Transformer tokens as an image grid. A vision transformer's block reads and writes tokens
//! `[N, p + h·w, C]`: `p` leading class, distillation or register tokens, then one token per
//! patch in row-major order. Such a tensor is explained as the `h × w` grid `[N, C, h, w]` of
//! its patch tokens, the leading tokens left out, as pytorch-grad-cam's `reshape_transform`
//! does for ViT. The grid is read from the patch embedding (the last convolution before the
//! tensor whose output has `h·w` positions, at most [`MAX_LEADING_TOKENS`] fewer than the
//! tokens), never guessed from a square root.

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
}

/// The token view of `tensor` (its batch-1 shape in `shapes`), if it is a rank-3 token tensor
/// whose patch grid a convolution before it gives.
pub fn token_view(
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
    tensor: &str,
) -> Option<View> {
    let &[1, tokens, channels] = shapes.get(tensor)?.as_slice() else {
        return None;
    };
    let producer = graph.producer(tensor)?;
    if channels < 2 {
        return None;
    }
    let embedding = graph.nodes[..producer]
        .iter()
        .rev()
        .find(|n| n.op_type == "Conv")?;
    let &[1, _, h, w] = shapes.get(&embedding.output)?.as_slice() else {
        return None;
    };
    let leading = tokens.checked_sub(h * w)?;
    (h * w > 1 && leading <= MAX_LEADING_TOKENS).then_some(View::Tokens { leading, h, w })
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
