//! `Pad` (constant, reflect and edge modes; pads from the attribute or a host input).

use burn::tensor::ops::PadMode;

use super::inputs::take_float;
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, MAX_RANK, Value, normalize_axis};

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
        .map_err(|e| OpError::Backend(e.to_string()))?
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
            return Err(OpError::Unsupported(format!(
                "pad mode `{other}` is not supported (constant, reflect, edge)"
            )));
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

/// The integer values of an input given by reference.
fn ints_of(v: Option<&Value>, what: &str) -> OpResult<Vec<i64>> {
    match v {
        Some(Value::Int(a)) => Ok(a.iter().copied().collect()),
        Some(Value::Float(_)) => Err(OpError::Type(format!(
            "{what} are computed on the device where shape data (integers) is expected"
        ))),
        None => Err(OpError::Graph(format!("{what} are missing"))),
    }
}

impl Pad {
    /// `(begin, end)` per axis of a rank-`rank` input, from the attribute or the inputs.
    fn pairs(
        &self,
        rank: usize,
        pads: Option<&Value>,
        axes: Option<&Value>,
    ) -> OpResult<Vec<(usize, usize)>> {
        let pads: Vec<i64> = match &self.pads_attr {
            Some(p) => p.clone(),
            None => ints_of(pads, "pads")?,
        };
        let axes: Vec<usize> = match axes {
            Some(a) => ints_of(Some(a), "axes")?
                .iter()
                .map(|&a| normalize_axis(a, rank))
                .collect::<OpResult<_>>()?,
            None => (0..rank).collect(),
        };
        let n = axes.len();
        if pads.len() != 2 * n || pads.iter().any(|&p| p < 0) {
            return Err(OpError::Attribute(format!(
                "pads {pads:?} must hold {} non-negative values",
                2 * n
            )));
        }
        let mut pairs = vec![(0usize, 0usize); rank];
        for (i, &axis) in axes.iter().enumerate() {
            pairs[axis] = (pads[i] as usize, pads[i + n] as usize);
        }
        Ok(pairs)
    }

    /// The fill value of constant mode.
    fn fill(&self, value: Option<&Value>) -> OpResult<f32> {
        match (self.value, value) {
            (Some(v), _) => Ok(v),
            (None, Some(v)) => first_float(v),
            (None, None) => Ok(0.0),
        }
    }
}

impl Operator for Pad {
    fn affine_in(&self, i: usize) -> bool {
        // A constant fill is the same at every point of the path; reflect and edge copy values.
        i == 0
    }

    fn zero_spatial_pad(&self, inputs: &[Option<&Value>]) -> Option<[(usize, usize); 2]> {
        let input = |i: usize| inputs.get(i).copied().flatten();
        let Some(Value::Float(x)) = input(0) else {
            return None;
        };
        if !matches!(self.mode, Mode::Constant) || x.rank != 4 || self.fill(input(2)).ok()? != 0.0 {
            return None;
        }
        match self.pairs(4, input(1), input(3)).ok()?.as_slice() {
            [(0, 0), (0, 0), h, w] => Some([*h, *w]),
            _ => None,
        }
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        // Constant padding: the gradient of the input is the output's, cropped.
        let x = step
            .float(0)
            .filter(|x| x.rank <= MAX_RANK && step.only_first())
            .or_no_gradient()?;
        if !matches!(self.mode, Mode::Constant) {
            return Err(OpError::NoGradient);
        }
        let input = |i: usize| step.inputs.get(i).copied().flatten();
        let pairs = self.pairs(x.rank, input(1), input(3))?;
        let stored = x.tensor.dims();
        let lead = MAX_RANK - x.rank;
        let ranges: [std::ops::Range<usize>; MAX_RANK] = std::array::from_fn(|d| {
            let begin = d.checked_sub(lead).map_or(0, |a| pairs[a].0);
            begin..begin + stored[d]
        });
        let grad = step.grad.tensor.dims();
        if ranges.iter().zip(grad).any(|(r, g)| r.end > g) {
            return Err(OpError::Shape(format!(
                "a gradient of shape {:?} does not hold the padded {:?}",
                step.grad.shape(),
                x.shape()
            )));
        }
        let g = step.grad.tensor.clone().slice(ranges);
        Ok(vec![Some(x.with_tensor(g))])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let mut x = take_float(inputs, 0)?;
        let input = |i: usize| inputs.get(i).and_then(Option::as_ref);
        let pairs = self.pairs(x.rank, input(1), input(3))?;
        let value = self.fill(input(2))?;
        let out: Vec<usize> = x
            .shape()
            .iter()
            .zip(&pairs)
            .map(|(&d, &(b, e))| d.saturating_add(b).saturating_add(e))
            .collect();
        crate::budget::check_shape(&out)?;
        let shape = x.shape();
        for (axis, (&d, &(b, e))) in shape.iter().zip(&pairs).enumerate() {
            let fits = match self.mode {
                Mode::Constant => true,
                Mode::Reflect => b.max(e) < d,
                Mode::Edge => d > 0 || b + e == 0,
            };
            if !fits {
                return Err(OpError::Shape(format!(
                    "cannot pad axis {axis} of {shape:?} by ({b}, {e}) in this mode (reflect needs pads smaller than the axis)"
                )));
            }
        }
        let mode = match self.mode {
            Mode::Constant => PadMode::Constant(value),
            Mode::Reflect => PadMode::Reflect,
            Mode::Edge => PadMode::Edge,
        };
        x.tensor = x.tensor.pad(pairs, mode);
        Ok(Value::Float(x))
    }
}
