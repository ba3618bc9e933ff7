//! `Range` of integers (shape arithmetic: the new exporter's position indices), on the host.

use super::inputs::int_input;
use super::operator::{BuildContext, OpResult, Operator};
use crate::error::OpError;
use crate::onnx::value::Value;

struct Range;

/// Builds a `Range` node.
pub fn build(_ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    Ok(Box::new(Range))
}

/// The one integer of input `i`.
fn scalar(inputs: &[Option<Value>], i: usize) -> OpResult<i64> {
    let a = int_input(inputs, i)?;
    match a.len() {
        1 => Ok(a.iter().copied().next().unwrap_or_default()),
        n => Err(OpError::Shape(format!(
            "input {i} holds {n} values, not one"
        ))),
    }
}

impl Operator for Range {
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let (start, limit, delta) = (scalar(inputs, 0)?, scalar(inputs, 1)?, scalar(inputs, 2)?);
        if delta == 0 {
            return Err(OpError::Data("Range with a step of 0".into()));
        }
        // ceil((limit - start) / delta), at least 0; in i128 so that no input overflows.
        let span = i128::from(limit) - i128::from(start);
        let d = i128::from(delta);
        let count = (span / d + i128::from(span % d != 0)).max(0);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        crate::budget::check_shape(&[count])?;
        Ok(Value::ints(
            (0..count as i64)
                .map(|k| start.wrapping_add(k.wrapping_mul(delta)))
                .collect(),
        ))
    }
}
