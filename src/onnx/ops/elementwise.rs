//! Broadcasting `Add`, `Sub`, `Mul`, `Div` on float tensors (device) and integer tensors (host),
//! and `Mod` of integers (shape arithmetic: Swin's window padding).

use burn::tensor::Tensor;
use ndarray::ArrayD;

use super::conv::is_plain_cpu;
use super::operator::{
    Backward, BoxRule, BuildContext, Epilogue, OpResult, Operator, OrNoGradient, unbroadcast,
};
use crate::error::OpError;
use crate::onnx::host;
use crate::onnx::value::{FloatValue, MAX_LOGICAL_RANK, Value, WIDE_RANK};

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    /// Integer remainder with the divisor's sign (ONNX `fmod = 0`, Python's `%`).
    Mod,
    /// Integer remainder with the dividend's sign (ONNX `fmod = 1`, C's `%`).
    Fmod,
}

struct Binary(Arith);

/// Builds a binary arithmetic node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let op = match ctx.node.op_type.as_str() {
        "Add" => Arith::Add,
        "Sub" => Arith::Sub,
        "Mul" => Arith::Mul,
        "Mod" if ctx.attrs().int("fmod", 0) != 0 => Arith::Fmod,
        "Mod" => Arith::Mod,
        _ => Arith::Div,
    };
    Ok(Box::new(Binary(op)))
}

fn to_float(a: &ArrayD<i64>, like: &FloatValue) -> OpResult<FloatValue> {
    let values = a.iter().map(|&v| v as f32).collect();
    FloatValue::from_host(values, a.shape(), &like.tensor.device())
}

fn ints(op: Arith, a: &ArrayD<i64>, b: &ArrayD<i64>) -> OpResult<ArrayD<i64>> {
    let (a, b) = match (a.broadcast(b.shape()), b.broadcast(a.shape())) {
        (Some(av), _) => (av.to_owned(), b.clone()),
        (None, Some(bv)) => (a.clone(), bv.to_owned()),
        _ => return Err(not_broadcast(a.shape(), b.shape())),
    };
    if matches!(op, Arith::Div | Arith::Mod | Arith::Fmod) && b.iter().any(|&v| v == 0) {
        return Err(OpError::Data("integer division by zero".into()));
    }
    // Shape arithmetic wraps rather than panics on crafted values (the budget refuses the
    // shapes they would give).
    let f: fn(i64, i64) -> i64 = match op {
        Arith::Add => i64::wrapping_add,
        Arith::Sub => i64::wrapping_sub,
        Arith::Mul => i64::wrapping_mul,
        Arith::Div => i64::wrapping_div,
        Arith::Fmod => i64::wrapping_rem,
        Arith::Mod => |x: i64, y: i64| {
            let r = x.wrapping_rem(y);
            if r != 0 && (r < 0) != (y < 0) {
                r + y
            } else {
                r
            }
        },
    };
    Ok(ndarray::Zip::from(&a).and(&b).map_collect(|&x, &y| f(x, y)))
}

/// The error of two shapes that do not broadcast.
fn not_broadcast(a: &[usize], b: &[usize]) -> OpError {
    OpError::Shape(format!("shapes {a:?} and {b:?} do not broadcast"))
}

/// The shape two shapes broadcast to (NumPy's rule: right-aligned, each pair of dims equal or
/// one of them 1).
pub(super) fn broadcast_dims(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(not_broadcast(a, b)),
        })
        .collect()
}

/// `d(a op b)/da` (`i` = 0) or `/db` (`i` = 1) times `g`, at the output's (broadcast) shape,
/// from the other input and this one (`x`), in `D`-D tensors.
fn chained<const D: usize>(
    op: Arith,
    i: usize,
    g: Tensor<D>,
    other: impl FnOnce() -> OpResult<Tensor<D>>,
    x: impl FnOnce() -> Tensor<D>,
) -> OpResult<Tensor<D>> {
    Ok(match (op, i) {
        (Arith::Add, _) | (Arith::Sub, 0) => g,
        (Arith::Sub, _) => g.neg(),
        (Arith::Mul, _) => g.mul(other()?),
        (Arith::Div, 0) => g.div(other()?),
        (Arith::Mod | Arith::Fmod, _) => return Err(OpError::NoGradient),
        (Arith::Div, _) => {
            // -g a / b²
            let (a, b) = (other()?, x());
            g.mul(a).div(b.clone().mul(b)).neg()
        }
    })
}

/// `a op b` where one side holds a single value and the other is a permuted view of a dense
/// buffer on the CPU backend (attention's scaling of `kᵀ`), computed in storage order
/// ([`host::map_in_storage_order`]); `None` where that does not apply.
fn by_one_value(
    op: Arith,
    a: &FloatValue,
    b: &FloatValue,
    out: &[usize],
) -> OpResult<Option<FloatValue>> {
    let one = |v: &FloatValue| v.shape().iter().product::<usize>() == 1;
    let (x, s, x_first) = match (one(a), one(b)) {
        (false, true) => (a, b, true),
        (true, false) => (b, a, false),
        _ => return Ok(None),
    };
    if x.shape() != out || x.rank >= WIDE_RANK || !is_plain_cpu(&x.tensor.device()) {
        return Ok(None);
    }
    let s = host::with_floats(&s.tensor, |v| v[0])?;
    let y = match (op, x_first) {
        (Arith::Add, _) => host::map_in_storage_order(&x.tensor, |v| v + s),
        (Arith::Mul, _) => host::map_in_storage_order(&x.tensor, |v| v * s),
        (Arith::Sub, true) => host::map_in_storage_order(&x.tensor, |v| v - s),
        (Arith::Sub, false) => host::map_in_storage_order(&x.tensor, |v| s - v),
        (Arith::Div, true) => host::map_in_storage_order(&x.tensor, |v| v / s),
        (Arith::Div, false) => host::map_in_storage_order(&x.tensor, |v| s / v),
        (Arith::Mod | Arith::Fmod, _) => None,
    };
    Ok(y.map(|y| x.with_tensor(y)))
}

impl Operator for Binary {
    fn affine_in(&self, i: usize) -> bool {
        // x + c, c + x, x - c, c - x, x * c, c * x and x / c; not c / x.
        match self.0 {
            Arith::Div => i == 0,
            Arith::Mod | Arith::Fmod => false,
            _ => true,
        }
    }

    fn epilogue(&self) -> Option<Epilogue> {
        matches!(self.0, Arith::Add).then_some(Epilogue::Add)
    }

    fn box_rule(&self, _inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        Ok(match self.0 {
            Arith::Mod | Arith::Fmod => BoxRule::Dense,
            _ => BoxRule::Pointwise,
        })
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let g = &step.grad;
        let mut grads = Vec::new();
        for i in 0..2 {
            if !step.wants(i) {
                grads.push(None);
                continue;
            }
            let x = step.float(i).or_no_gradient()?;
            let other = || step.float(1 - i).or_no_gradient();
            // Above rank 4 in the 6-D view (the stored form merges axes that broadcasting
            // keeps apart), else in the stored form.
            let full = if g.rank >= WIDE_RANK || x.rank >= WIDE_RANK {
                let o = || other().map(|o| o.view::<MAX_LOGICAL_RANK>());
                FloatValue::from_view(chained(self.0, i, g.view(), o, || x.view())?)
            } else {
                let o = || other().map(|o| o.tensor.clone());
                g.with_tensor(chained(self.0, i, g.tensor.clone(), o, || {
                    x.tensor.clone()
                })?)
            };
            grads.push(Some(unbroadcast(&full, &x.shape())?));
        }
        Ok(grads)
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let [a, b, ..] = inputs else {
            return Err(OpError::Graph("needs two inputs".into()));
        };
        let (Some(a), Some(b)) = (a.take(), b.take()) else {
            return Err(OpError::Graph("needs two inputs".into()));
        };
        let (a, b) = match (a, b) {
            (Value::Int(a), Value::Int(b)) => return ints(self.0, &a, &b).map(Value::Int),
            (Value::Float(a), Value::Float(b)) => (a, b),
            (Value::Float(a), Value::Int(b)) => {
                let b = to_float(&b, &a)?;
                (a, b)
            }
            (Value::Int(a), Value::Float(b)) => (to_float(&a, &b)?, b),
        };
        if matches!(self.0, Arith::Mod | Arith::Fmod) {
            return Err(OpError::Unsupported(
                "Mod of float tensors is not supported (only of shape integers)".into(),
            ));
        }
        let out = broadcast_dims(&a.shape(), &b.shape())?;
        crate::budget::check_shape(&out)?;
        if out.len() > WIDE_RANK
            && ![a.shape(), b.shape()]
                .iter()
                .all(|s| FloatValue::broadcasts_stored(s, &out))
        {
            return Err(OpError::Unsupported(format!(
                "broadcasting {:?} against {:?} (rank {}) is not supported",
                a.shape(),
                b.shape(),
                out.len()
            )));
        }
        if let Some(y) = by_one_value(self.0, &a, &b, &out)? {
            return Ok(Value::Float(y));
        }
        if out.len() == WIDE_RANK {
            // Rank 5 broadcasts in its own 5-D view (its first two axes are stored merged).
            let (a, b) = (a.wide(), b.wide());
            let wide = match self.0 {
                Arith::Add => a.add(b),
                Arith::Sub => a.sub(b),
                Arith::Mul => a.mul(b),
                _ => a.div(b),
            };
            return Ok(Value::Float(FloatValue::from_wide(wide)));
        }
        let tensor = match self.0 {
            Arith::Add => a.tensor.add(b.tensor),
            Arith::Sub => a.tensor.sub(b.tensor),
            Arith::Mul => a.tensor.mul(b.tensor),
            _ => a.tensor.div(b.tensor),
        };
        Ok(Value::Float(FloatValue::new(tensor, &out)))
    }
}
