//! `Expand`: broadcasting a tensor to a shape (ONNX's two-way broadcast: the output is the
//! broadcast of the input's shape and the given one). In a model exported with a fixed batch
//! of 1, a target that starts with that 1 puts the run's batch there instead when the expanded
//! tensor is a constant, as `Reshape` does: ViT exports expand the class token to `[1, 1, C]`
//! before joining it to the patches.

use ndarray::IxDyn;

use super::elementwise::broadcast_dims;
use super::inputs::{int_input, missing};
use super::operator::{BuildContext, OpResult, Operator};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, Value, WIDE_RANK, stored_shape};

struct Expand {
    /// The model has a fixed batch of 1 and the expanded tensor is a constant (a class
    /// token): a target `[1, ...]` follows the run's batch.
    follow_batch: bool,
}

/// Builds an `Expand` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    Ok(Box::new(Expand {
        follow_batch: ctx.fixed_batch
            && ctx
                .node
                .input
                .first()
                .is_some_and(|x| ctx.constants.contains_key(x)),
    }))
}

impl Operator for Expand {
    fn follows_batch(&self) -> bool {
        self.follow_batch
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let mut target = Vec::new();
        for &d in int_input(inputs, 1)?.iter() {
            target.push(
                usize::try_from(d)
                    .map_err(|_| OpError::Shape(format!("Expand to a negative dimension {d}")))?,
            );
        }
        if self.follow_batch && target.len() >= 2 && target[0] == 1 {
            target[0] = crate::budget::batch();
        }
        let x = inputs
            .first_mut()
            .and_then(Option::take)
            .ok_or_else(|| missing(0))?;
        let out = broadcast_dims(&x.shape(), &target)?;
        crate::budget::check_shape(&out)?;
        match x {
            Value::Int(a) => a
                .broadcast(IxDyn(&out))
                .map(|v| Value::Int(v.to_owned()))
                .ok_or_else(|| {
                    OpError::Shape(format!("{:?} does not expand to {out:?}", a.shape()))
                }),
            Value::Float(_) if out.len() > WIDE_RANK => Err(OpError::Unsupported(format!(
                "expanding to rank {} ({out:?}) is not supported",
                out.len()
            ))),
            Value::Float(f) if out.len() == WIDE_RANK => {
                let mut dims = [1usize; WIDE_RANK];
                dims.copy_from_slice(&out);
                Ok(Value::Float(FloatValue::from_wide(f.wide().expand(dims))))
            }
            Value::Float(f) => Ok(Value::Float(FloatValue::new(
                f.tensor.expand(stored_shape(&out)?),
                &out,
            ))),
        }
    }
}
