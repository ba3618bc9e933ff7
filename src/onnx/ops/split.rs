//! `Split`, a node with several outputs: the loader builds one operator per output, each
//! computing its own part ([`BuildContext::output`]).

use super::inputs::{float_input, int_input};
use super::operator::{Backward, BoxRule, BuildContext, Move, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, Value, WIDE_RANK, normalize_axis};

/// Where the part sizes come from.
enum Sizes {
    /// Listed in the `split` attribute (before opset 13).
    Fixed(Vec<i64>),
    /// Input 1 (a constant or computed by the graph), read at run time.
    Input,
    /// `parts` equal parts; the last is smaller when the axis does not divide (opset 18).
    Equal(usize),
}

struct SplitPart {
    axis: i64,
    sizes: Sizes,
    /// Which output (part) this operator computes.
    index: usize,
}

/// Builds the operator for output [`BuildContext::output`] of a `Split` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let has_input = ctx.node.input.get(1).is_some_and(|n| !n.is_empty());
    let sizes = if ctx.opset < 13 {
        a.ints("split").map(Sizes::Fixed)
    } else if has_input {
        Some(Sizes::Input)
    } else {
        None
    };
    let parts = ctx.node.output.len();
    match a.int("num_outputs", 0) {
        0 => {}
        n if n == parts as i64 => {}
        n => {
            return Err(OpError::Attribute(format!(
                "num_outputs is {n} but the node has {parts} outputs"
            )));
        }
    }
    Ok(Box::new(SplitPart {
        axis: a.int("axis", 0),
        sizes: sizes.unwrap_or(Sizes::Equal(parts)),
        index: ctx.output,
    }))
}

impl SplitPart {
    /// The start and length of this part along an axis of `dim` values.
    fn range(&self, dim: usize, inputs: &[Option<Value>]) -> OpResult<(usize, usize)> {
        let sizes: Vec<usize> = match &self.sizes {
            Sizes::Equal(parts) => {
                let parts = (*parts).max(1);
                let chunk = dim.div_ceil(parts);
                (0..parts)
                    .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                    .collect()
            }
            Sizes::Fixed(v) => checked_sizes(v)?,
            Sizes::Input => {
                checked_sizes(&int_input(inputs, 1)?.iter().copied().collect::<Vec<_>>())?
            }
        };
        let total = sizes.iter().try_fold(0usize, |n, &s| n.checked_add(s));
        if total != Some(dim) {
            return Err(OpError::Shape(format!(
                "split sizes {sizes:?} do not add up to the axis length {dim}"
            )));
        }
        let length = *sizes.get(self.index).ok_or_else(|| {
            OpError::Shape(format!("output {} has no part in {sizes:?}", self.index))
        })?;
        if length == 0 {
            return Err(OpError::Unsupported(format!(
                "output {} would be an empty part of {sizes:?} (empty tensors are not supported)",
                self.index
            )));
        }
        Ok((sizes[..self.index].iter().sum(), length))
    }
}

fn checked_sizes(v: &[i64]) -> OpResult<Vec<usize>> {
    v.iter()
        .map(|&s| {
            usize::try_from(s).map_err(|_| OpError::Data(format!("split size {s} is negative")))
        })
        .collect()
}

impl Operator for SplitPart {
    fn affine_in(&self, i: usize) -> bool {
        i == 0
    }

    /// This part is the input's box along the axis.
    fn box_rule(&self, inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        let Some(Some(Value::Float(x))) = inputs.first() else {
            return Ok(BoxRule::Dense);
        };
        let shape = x.shape();
        if shape.is_empty() {
            return Ok(BoxRule::Dense);
        }
        let axis = normalize_axis(self.axis, shape.len())?;
        let owned: Vec<Option<Value>> = inputs.iter().map(|v| v.cloned()).collect();
        let (start, length) = self.range(shape[axis], &owned)?;
        let mut from: Vec<_> = shape.iter().map(|&d| 0..d).collect();
        from[axis] = start..start + length;
        let out = from.iter().map(|r| 0..r.len()).collect();
        Ok(BoxRule::Moves(vec![Move {
            input: 0,
            from,
            to: out,
        }]))
    }

    /// This part's gradient in its place along the axis, zeros over the other parts.
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step
            .float(0)
            .filter(|_| step.only_first())
            .or_no_gradient()?;
        if x.rank == 0 {
            return Err(OpError::NoGradient);
        }
        let axis = normalize_axis(self.axis, x.rank)?;
        let (start, length) = self.range(x.shape()[axis], &step.owned_inputs())?;
        // Any rank: timm's attention splits q, k and v off a rank-5 tensor's first axis.
        let mut ranges: Vec<_> = x.shape().into_iter().map(|d| 0..d).collect();
        ranges[axis] = start..start + length;
        Ok(vec![step.placed(x, &ranges)])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = float_input(inputs, 0)?;
        let shape = x.shape();
        if x.rank == 0 {
            return Err(OpError::Shape("cannot split a scalar".into()));
        }
        let axis = normalize_axis(self.axis, x.rank)?;
        let (start, length) = self.range(shape[axis], inputs)?;
        if x.rank == WIDE_RANK {
            // MobileViT splits q, k and v off axis 0 of a rank-5 tensor.
            let part = x.wide().narrow(axis, start, length);
            return Ok(Value::Float(FloatValue::from_wide(part)));
        }
        let physical = x.physical_axis(self.axis)?;
        let part = x.tensor.clone().narrow(physical, start, length);
        Ok(Value::Float(x.with_tensor(part)))
    }
}
