//! `Gemm` (alpha, beta, transA, transB) and `MatMul`.

use super::elementwise::broadcast_dims;
use super::inputs::float_input;
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient, unbroadcast};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, MAX_LOGICAL_RANK, Value};

enum Linear {
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
}

/// Builds a `Gemm` or `MatMul` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    Ok(Box::new(match ctx.node.op_type.as_str() {
        "Gemm" => Linear::Gemm {
            alpha: a.float("alpha", 1.0),
            beta: a.float("beta", 1.0),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        },
        _ => Linear::MatMul,
    }))
}

fn matrix(v: FloatValue, transpose: bool, which: &str) -> OpResult<FloatValue> {
    if v.rank < 2 {
        return Err(OpError::Shape(format!(
            "{which} must have rank >= 2, got shape {:?}",
            v.shape()
        )));
    }
    Ok(if transpose {
        FloatValue {
            tensor: v.tensor.swap_dims(2, 3),
            ..v
        }
    } else {
        v
    })
}

impl Operator for Linear {
    /// `A`'s gradient `g · Bᵀ` (times alpha, transposed back for `transA`); none for a `B` or
    /// `C` computed from the input (attention), which Burn's autodiff handles.
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let (alpha, ta, tb) = match self {
            Linear::Gemm {
                alpha,
                trans_a,
                trans_b,
                ..
            } => (*alpha, *trans_a, *trans_b),
            Linear::MatMul => (1.0, false, false),
        };
        let a = step.float(0).or_no_gradient()?;
        let b = step.float(1).or_no_gradient()?;
        let g = &step.grad;
        if !step.only_first()
            || [a.rank, b.rank, g.rank].contains(&MAX_LOGICAL_RANK)
            || a.rank < 2
            || b.rank < 2
            || g.rank < 2
        {
            return Err(OpError::NoGradient);
        }
        // op(B)ᵀ: B itself when B is used transposed.
        let bt = if tb {
            b.tensor.clone()
        } else {
            b.tensor.clone().swap_dims(2, 3)
        };
        let [gk, bk] = [g.tensor.dims()[3], bt.dims()[2]];
        if gk != bk {
            return Err(OpError::Shape(format!(
                "a gradient of shape {:?} does not multiply B of shape {:?}",
                g.shape(),
                b.shape()
            )));
        }
        broadcast_dims(&g.tensor.dims()[..2], &bt.dims()[..2])?;
        let mut da = g.tensor.clone().matmul(bt);
        if alpha != 1.0 {
            da = da.mul_scalar(alpha);
        }
        if ta {
            da = da.swap_dims(2, 3);
        }
        let mut shape = g.shape();
        let d = da.dims();
        shape.truncate(g.rank - 2);
        shape.extend([d[2], d[3]]);
        let da = FloatValue::new(da, &shape);
        Ok(vec![Some(unbroadcast(&da, &a.shape())?)])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let (ta, tb) = match self {
            Linear::Gemm {
                trans_a, trans_b, ..
            } => (*trans_a, *trans_b),
            Linear::MatMul => (false, false),
        };
        let a = matrix(float_input(inputs, 0)?, ta, "A")?;
        let b = matrix(float_input(inputs, 1)?, tb, "B")?;
        let (sa, sb) = (a.shape(), b.shape());
        if sa[sa.len() - 1] != sb[sb.len() - 2] {
            return Err(OpError::Shape(format!("cannot multiply {sa:?} by {sb:?}")));
        }
        // The batch axes (all but the last two) broadcast against each other.
        let mut out = broadcast_dims(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
        out.extend([sa[sa.len() - 2], sb[sb.len() - 1]]);
        crate::budget::check_shape(&out)?;
        if out.len() == MAX_LOGICAL_RANK {
            if let Linear::Gemm { .. } = self {
                return Err(OpError::Shape("Gemm takes 2-D matrices".into()));
            }
            // Rank 5 multiplies in its own 5-D view (its first two axes are stored merged).
            let y = FloatValue::from_wide(a.wide().matmul(b.wide()));
            return Ok(Value::Float(y));
        }
        let mut y = a.tensor.matmul(b.tensor);
        if let Linear::Gemm { alpha, beta, .. } = self {
            if *alpha != 1.0 {
                y = y.mul_scalar(*alpha);
            }
            if let Some(Some(_)) = inputs.get(2) {
                let c = float_input(inputs, 2)?;
                let with_c = broadcast_dims(&out, &c.shape())?;
                if with_c != out {
                    return Err(OpError::Shape(format!(
                        "C of shape {:?} does not broadcast to the product's {out:?}",
                        c.shape()
                    )));
                }
                let c = c.tensor;
                y = y.add(if *beta != 1.0 { c.mul_scalar(*beta) } else { c });
            }
        }
        Ok(Value::Float(FloatValue::new(y, &out)))
    }
}
