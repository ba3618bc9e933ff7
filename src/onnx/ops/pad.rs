//! `Pad` (constant, reflect and edge modes; pads from the attribute or a host input).

use burn::tensor::ops::PadMode;

use super::{BuildContext, OpResult, Operator, float_input, int_input};
use crate::onnx::value::{Value, normalize_axis};

enum Mode {
    Constant,
    Reflect,
    Edge,
}

struct Pad {
    mode: Mode,
    /// Pads given as an attribute (opset < 11).
    pads_attr: Option<Vec<i64>>,
    /// The fill value when it is known at load time.
    value: Option<f32>,
}

fn first_float(v: &Value) -> OpResult<f32> {
    Ok(v.host_floats()
        .map_err(|e| e.to_string())?
        .first()
        .copied()
        .unwrap_or(0.0))
}

/// Builds a `Pad` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let mode = match a.string("mode").as_deref().unwrap_or("constant") {
        "constant" => Mode::Constant,
        "reflect" => Mode::Reflect,
        "edge" => Mode::Edge,
        other => {
            return Err(format!(
                "pad mode `{other}` is not supported (constant, reflect, edge)"
            ));
        }
    };
    let pads_attr = if ctx.opset < 11 { a.ints("pads") } else { None };
    let has_value_input = ctx.node.input.get(2).is_some_and(|n| !n.is_empty());
    let value = match ctx.constant_input(2) {
        Some(v) => Some(v.first().copied().unwrap_or(0.0)),
        None if has_value_input => None,
        None => Some(a.float("value", 0.0)),
    };
    Ok(Box::new(Pad {
        mode,
        pads_attr,
        value,
    }))
}

impl Operator for Pad {
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let mut x = float_input(inputs, 0)?;
        let rank = x.rank;
        let pads: Vec<i64> = match &self.pads_attr {
            Some(p) => p.clone(),
            None => int_input(inputs, 1)?.iter().copied().collect(),
        };
        let axes: Vec<usize> = match inputs.get(3) {
            Some(Some(_)) => int_input(inputs, 3)?
                .iter()
                .map(|&a| normalize_axis(a, rank).map_err(|e| e.to_string()))
                .collect::<OpResult<_>>()?,
            _ => (0..rank).collect(),
        };
        let n = axes.len();
        if pads.len() != 2 * n || pads.iter().any(|&p| p < 0) {
            return Err(format!(
                "pads {pads:?} must hold {} non-negative values",
                2 * n
            ));
        }
        let mut pairs = vec![(0usize, 0usize); rank];
        for (i, &axis) in axes.iter().enumerate() {
            pairs[axis] = (pads[i] as usize, pads[i + n] as usize);
        }
        let value = match (self.value, inputs.get(2)) {
            (Some(v), _) => v,
            (None, Some(Some(v))) => first_float(v)?,
            (None, _) => 0.0,
        };
        let mode = match self.mode {
            Mode::Constant => PadMode::Constant(value),
            Mode::Reflect => PadMode::Reflect,
            Mode::Edge => PadMode::Edge,
        };
        x.tensor = x.tensor.pad(pairs, mode);
        Ok(Value::Float(x))
    }
}
