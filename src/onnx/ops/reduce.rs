//! `ReduceMean`, `ReduceSum` and `ReduceMax` over float tensors, with `keepdims`, the axes from
//! the attribute (before opset 13 for ReduceSum, 18 for the others) or the input.

use burn::tensor::Tensor;

use super::inputs::{float_input, optional_ints};
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, MAX_RANK, Value, WIDE_RANK, normalize_axis};

/// What a `Reduce*` op computes over its axes.
#[derive(Clone, Copy)]
enum Reduction {
    Mean,
    Sum,
    Max,
}

struct Reduce {
    kind: Reduction,
    /// The axes from the attribute; `None`: from input 1, or every axis.
    axes: Option<Vec<i64>>,
    keep_dims: bool,
}

/// Builds a `Reduce*` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let (kind, axes_moved) = match ctx.node.op_type.as_str() {
        "ReduceMean" => (Reduction::Mean, 18),
        "ReduceSum" => (Reduction::Sum, 13),
        _ => (Reduction::Max, 18),
    };
    Ok(Box::new(Reduce {
        kind,
        axes: if ctx.opset < axes_moved {
            a.ints("axes")
        } else {
            None
        },
        keep_dims: a.int("keepdims", 1) != 0,
    }))
}

/// The axes a `Reduce*` op reduces, normalised and without repeats: `axes` (from the
/// attribute or the input), or all of a rank-`rank` input.
fn reduce_axes(axes: Option<Vec<i64>>, rank: usize) -> OpResult<Vec<usize>> {
    let Some(axes) = axes else {
        return Ok((0..rank).collect());
    };
    let mut out = Vec::with_capacity(axes.len());
    for &a in &axes {
        let a = normalize_axis(a, rank)?;
        if out.contains(&a) {
            return Err(OpError::Attribute(format!(
                "axes {axes:?} name axis {a} twice"
            )));
        }
        out.push(a);
    }
    Ok(out)
}

/// `t` reduced over the stored `dims`, each kept with size 1.
fn reduce<const D: usize>(mut t: Tensor<D>, kind: Reduction, dims: &[usize]) -> Tensor<D> {
    for &d in dims {
        t = match kind {
            Reduction::Mean => t.mean_dim(d),
            Reduction::Sum => t.sum_dim(d),
            Reduction::Max => t.max_dim(d),
        };
    }
    t
}

impl Operator for Reduce {
    fn affine_in(&self, i: usize) -> bool {
        i == 0 && !matches!(self.kind, Reduction::Max)
    }

    /// `ReduceMean`'s and `ReduceSum`'s input gradient: the output's gradient spread back over
    /// the reduced axes (divided by their size for the mean).
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step
            .float(0)
            .filter(|x| x.rank < WIDE_RANK && step.only_first())
            .or_no_gradient()?;
        if matches!(self.kind, Reduction::Max) {
            return Err(OpError::NoGradient);
        }
        // The forward pass read the axes input as integers already.
        let axes = self
            .axes
            .clone()
            .or_else(|| match step.inputs.get(1).copied().flatten() {
                Some(Value::Int(a)) => Some(a.iter().copied().collect()),
                _ => None,
            });
        let axes = reduce_axes(axes, x.rank)?;
        let shape = x.shape();
        let kept: Vec<usize> = (0..x.rank)
            .map(|i| if axes.contains(&i) { 1 } else { shape[i] })
            .collect();
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let g = step.grad.clone().reshape(&kept)?;
        let mut t = g.tensor.expand(x.tensor.dims());
        if matches!(self.kind, Reduction::Mean) {
            t = t.div_scalar(count as f32);
        }
        Ok(vec![Some(x.with_tensor(t))])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let f = float_input(inputs, 0)?;
        let shape = f.shape();
        let axes = match &self.axes {
            Some(a) => Some(a.clone()),
            None => optional_ints(inputs, 1)?,
        };
        let axes = reduce_axes(axes, f.rank)?;
        let kept = if f.rank == WIDE_RANK {
            // ResNeSt sums its radix axis (1) of a rank-5 tensor.
            FloatValue::from_wide(reduce(f.wide(), self.kind, &axes))
        } else if f.rank > WIDE_RANK {
            FloatValue::from_view::<6>(reduce(f.view(), self.kind, &axes))
        } else {
            let dims: Vec<usize> = axes.iter().map(|&a| a + MAX_RANK - f.rank).collect();
            f.with_tensor(reduce(f.tensor.clone(), self.kind, &dims))
        };
        if self.keep_dims {
            return Ok(Value::Float(kept));
        }
        let out: Vec<usize> = shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        kept.reshape(&out).map(Value::Float)
    }
}
