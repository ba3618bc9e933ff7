//! Comparisons and selection: `Equal`, `IsNaN` and `Where`. A comparison of shape integers
//! gives host integers 0/1 (the legacy exporter's `Expand` shape arithmetic); one of float
//! tensors gives floats 0/1 on the device (the new exporter's `Where(IsNaN(x), 0, x)` guard
//! after an attention's softmax).

use burn::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

use super::elementwise::broadcast_dims;
use super::inputs::missing;
use super::operator::{BuildContext, OpResult, Operator};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, Value, WIDE_RANK, stored_shape};

#[derive(Clone, Copy)]
enum Logic {
    Equal,
    IsNan,
    Where,
}

struct Node(Logic);

/// Builds a comparison or selection node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    Ok(Box::new(Node(match ctx.node.op_type.as_str() {
        "Equal" => Logic::Equal,
        "IsNaN" => Logic::IsNan,
        _ => Logic::Where,
    })))
}

/// Input `i`, present.
fn input(inputs: &[Option<Value>], i: usize) -> OpResult<&Value> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| missing(i))
}

/// `a` broadcast to `shape` on the host.
fn int_to(a: &ArrayD<i64>, shape: &[usize]) -> OpResult<ArrayD<i64>> {
    a.broadcast(IxDyn(shape))
        .map(|v| v.to_owned())
        .ok_or_else(|| OpError::Shape(format!("{:?} does not broadcast to {shape:?}", a.shape())))
}

/// `v` as a float tensor stored at the 4-D shape of `shape` (its broadcast), on the device of
/// `like`. Ranks 5 and 6 are refused: their stored form merges axes that broadcasting keeps apart.
fn float_to(v: &Value, shape: &[usize], like: &FloatValue) -> OpResult<Tensor<4>> {
    if shape.len() >= WIDE_RANK {
        return Err(OpError::Unsupported(format!(
            "comparisons and selections of rank-{} tensors (shape {shape:?}) are not supported",
            shape.len()
        )));
    }
    let f = match v {
        Value::Float(f) => f.clone(),
        Value::Int(a) => FloatValue::from_host(
            a.iter().map(|&x| x as f32).collect(),
            a.shape(),
            &like.tensor.device(),
        )?,
    };
    Ok(f.tensor.expand(stored_shape(shape)?))
}

/// The first float among `values`, whose device the result uses.
fn first_float<'a>(values: &[&'a Value]) -> Option<&'a FloatValue> {
    values.iter().find_map(|v| match v {
        Value::Float(f) => Some(f),
        Value::Int(_) => None,
    })
}

impl Node {
    fn equal(a: &Value, b: &Value) -> OpResult<Value> {
        let out = broadcast_dims(&a.shape(), &b.shape())?;
        crate::budget::check_shape(&out)?;
        if let (Value::Int(x), Value::Int(y)) = (a, b) {
            let (x, y) = (int_to(x, &out)?, int_to(y, &out)?);
            return Ok(Value::Int(
                ndarray::Zip::from(&x)
                    .and(&y)
                    .map_collect(|&p, &q| i64::from(p == q)),
            ));
        }
        let like = first_float(&[a, b]).ok_or_else(|| missing(0))?;
        let (x, y) = (float_to(a, &out, like)?, float_to(b, &out, like)?);
        Ok(Value::Float(FloatValue::new(x.equal(y).float(), &out)))
    }

    fn select(c: &Value, x: &Value, y: &Value) -> OpResult<Value> {
        let out = broadcast_dims(&broadcast_dims(&c.shape(), &x.shape())?, &y.shape())?;
        crate::budget::check_shape(&out)?;
        match (c, x, y) {
            (Value::Int(c), Value::Int(x), Value::Int(y)) => {
                let (c, x, y) = (int_to(c, &out)?, int_to(x, &out)?, int_to(y, &out)?);
                Ok(Value::Int(
                    ndarray::Zip::from(&c)
                        .and(&x)
                        .and(&y)
                        .map_collect(|&c, &x, &y| if c != 0 { x } else { y }),
                ))
            }
            _ => {
                let like = first_float(&[c, x, y]).ok_or_else(|| missing(1))?;
                let mask = float_to(c, &out, like)?.bool();
                let (x, y) = (float_to(x, &out, like)?, float_to(y, &out, like)?);
                Ok(Value::Float(FloatValue::new(y.mask_where(mask, x), &out)))
            }
        }
    }
}

impl Operator for Node {
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        match self.0 {
            Logic::Equal => Self::equal(input(inputs, 0)?, input(inputs, 1)?),
            Logic::IsNan => match input(inputs, 0)? {
                Value::Float(f) => Ok(Value::Float(
                    f.with_tensor(f.tensor.clone().is_nan().float()),
                )),
                Value::Int(a) => Ok(Value::Int(a.mapv(|_| 0))),
            },
            Logic::Where => Self::select(input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?),
        }
    }
}
