//! Gradients that are zero outside a box of their tensor. A detection's score is one value of
//! the detector's output, and it reaches the head's feature maps only through its receptive
//! field: its reverse pass carries the box's values alone through the ops that say how
//! ([`BoxRule`]: element-wise ops, the ops that move values, convolutions), and makes a
//! gradient whole only where an op needs it so, where a layer's gradient is handed out, and at
//! the end. Ranks up to 4 (a box is kept in the stored 4-D form).

use std::ops::Range;

use burn::tensor::Tensor;

use super::exec::Step;
use super::fusion::{FusedConv, Plan};
use super::graph::{Env, Graph};
use super::host;
use super::layer_gradient::LayerGradient;
use super::ops::grad::activation_grad;
use super::ops::{Backward, BoxRule, Move, OpResult, Operator, OrNoGradient};
use super::value::{FloatValue, MAX_RANK, Value};
use crate::error::OpError;
use crate::kernels::activation::Activation;

/// A box of the stored 4-D form: a range per axis.
type Box4 = [Range<usize>; MAX_RANK];

/// A gradient that is zero outside the box `at`: its values there (`part`, of the box's shape)
/// in a tensor of logical shape `full`.
#[derive(Clone)]
pub struct BoxGrad {
    part: FloatValue,
    at: Box4,
    full: Vec<usize>,
}

/// A reverse pass's gradient: whole, or zero outside a box.
#[derive(Clone)]
pub enum Grad {
    /// Every value.
    Dense(FloatValue),
    /// The values in a box, zeros elsewhere.
    Boxed(BoxGrad),
}

/// `shape` (rank 4 at most) in the stored form: leading 1s.
fn stored4(shape: &[usize]) -> [usize; MAX_RANK] {
    let mut out = [1; MAX_RANK];
    out[MAX_RANK - shape.len()..].copy_from_slice(shape);
    out
}

/// Values in `at`.
fn volume(at: &Box4) -> usize {
    at.iter().map(Range::len).product()
}

/// `ranges` of a rank-`rank` tensor's logical axes as a stored box.
fn stored_box(ranges: &[Range<usize>], rank: usize) -> OpResult<Box4> {
    if ranges.len() != rank || rank > MAX_RANK {
        return Err(OpError::NoGradient);
    }
    let mut at: Box4 = std::array::from_fn(|_| 0..1);
    at[MAX_RANK - rank..].clone_from_slice(ranges);
    Ok(at)
}

/// `x`'s values in the box `at`.
fn cut(x: &FloatValue, at: &Box4) -> FloatValue {
    let shape: Vec<usize> = at[MAX_RANK - x.rank..].iter().map(Range::len).collect();
    FloatValue::new(x.tensor.clone().slice(at.clone()), &shape)
}

impl Grad {
    /// A gradient of the tensor `like` (rank 4 at most) that is zero but for `values`, each
    /// at a flat position of the whole tensor (a detection's score, and its objectness): boxed
    /// around them, without making the whole first.
    pub fn of_values(like: &FloatValue, values: &[(usize, f32)]) -> OpResult<Grad> {
        let dims = like.tensor.dims();
        let coords = |mut p: usize| -> [usize; MAX_RANK] {
            let mut c = [0; MAX_RANK];
            for a in (0..MAX_RANK).rev() {
                c[a] = p % dims[a];
                p /= dims[a];
            }
            c
        };
        let total: usize = dims.iter().product();
        if like.rank > MAX_RANK || values.is_empty() || values.iter().any(|&(p, _)| p >= total) {
            return Err(OpError::NoGradient);
        }
        let (mut lo, mut hi) = ([usize::MAX; MAX_RANK], [0; MAX_RANK]);
        for &(p, _) in values {
            for (a, c) in coords(p).into_iter().enumerate() {
                lo[a] = lo[a].min(c);
                hi[a] = hi[a].max(c + 1);
            }
        }
        let at: Box4 = std::array::from_fn(|a| lo[a]..hi[a]);
        let size = at.clone().map(|r| r.len());
        let mut part = vec![0.0f32; volume(&at)];
        for &(p, v) in values {
            let c = coords(p);
            let i = (0..MAX_RANK).fold(0, |i, a| i * size[a] + c[a] - lo[a]);
            part[i] += v;
        }
        let part = host::tensor(part, size, &like.tensor.device());
        Ok(BoxGrad::of_part(part, at, like.shape()))
    }

    /// The gradient of a `[N, C, h, w]` layer as it is handed out: boxed where the box spans
    /// every image and channel (a box of the plane), else whole.
    pub fn layer_gradient(&self) -> OpResult<LayerGradient> {
        if let Grad::Boxed(b) = self
            && let [n, c, h, w] = *b.full.as_slice()
            && b.at[0] == (0..n)
            && b.at[1] == (0..c)
        {
            return Ok(LayerGradient::Boxed {
                part: b.part.tensor.clone(),
                rows: b.at[2].clone(),
                cols: b.at[3].clone(),
                dims: [n, c, h, w],
            });
        }
        Ok(LayerGradient::Whole(self.dense()?.tensor))
    }

    /// The whole gradient.
    pub fn dense(&self) -> OpResult<FloatValue> {
        match self {
            Grad::Dense(g) => Ok(g.clone()),
            Grad::Boxed(b) => b.dense(),
        }
    }

    /// The sum of two gradients of the same tensor (`name`, for the error): a box around
    /// both boxes where both are boxed.
    pub fn add(self, other: Grad, name: &str) -> OpResult<Grad> {
        if let (Grad::Boxed(a), Grad::Boxed(b)) = (&self, &other)
            && a.full == b.full
        {
            return a.add(b);
        }
        Ok(Grad::Dense(sum(self.dense()?, other.dense()?, name)?))
    }
}

/// The sum of two whole gradients of the same tensor (`name`, for the error).
pub fn sum(a: FloatValue, b: FloatValue, name: &str) -> OpResult<FloatValue> {
    if a.tensor.dims() != b.tensor.dims() {
        return Err(OpError::Shape(format!(
            "gradients of shapes {:?} and {:?} reach `{name}`",
            a.shape(),
            b.shape()
        )));
    }
    let sum = a.tensor.clone().add(b.tensor);
    Ok(a.with_tensor(sum))
}

/// Adds `part` (values of the box `at`'s shape, row-major) into `out` (a tensor of the stored
/// shape `dims`) at `at`, a row at a time.
fn add_into(out: &mut [f32], dims: [usize; MAX_RANK], part: &[f32], at: &Box4) {
    let mut rows = part.chunks_exact(at[3].len());
    for i in at[0].clone() {
        for j in at[1].clone() {
            for k in at[2].clone() {
                let start = ((i * dims[1] + j) * dims[2] + k) * dims[3] + at[3].start;
                let Some(row) = rows.next() else { return };
                for (o, p) in out[start..start + row.len()].iter_mut().zip(row) {
                    *o += p;
                }
            }
        }
    }
}

/// `at` moved to where it lies inside the box `around`.
fn inside(at: &Box4, around: &Box4) -> Box4 {
    std::array::from_fn(|a| at[a].start - around[a].start..at[a].end - around[a].start)
}

impl BoxGrad {
    /// The values `part` (a tensor of the box's shape) at `at` of a tensor of logical shape
    /// `full`; whole when the box is the whole tensor.
    fn of_part(part: Tensor<4>, at: Box4, full: Vec<usize>) -> Grad {
        let whole = at.iter().zip(stored4(&full)).all(|(r, d)| *r == (0..d));
        if whole {
            return Grad::Dense(FloatValue::new(part, &full));
        }
        let shape: Vec<usize> = at[MAX_RANK - full.len()..].iter().map(Range::len).collect();
        Grad::Boxed(BoxGrad {
            part: FloatValue::new(part, &shape),
            at,
            full,
        })
    }

    /// The boxes `parts` (each at its box inside `around`) added into zeros of `around`'s
    /// shape, on the host.
    fn summed(&self, around: &Box4, parts: &[&BoxGrad]) -> OpResult<Tensor<4>> {
        let dims = around.clone().map(|r| r.len());
        let mut out = vec![0.0f32; volume(around)];
        for part in parts {
            let at = inside(&part.at, around);
            host::with_floats(&part.part.tensor, |p| add_into(&mut out, dims, p, &at))?;
        }
        Ok(host::tensor(out, dims, &self.part.tensor.device()))
    }

    /// The whole gradient: the part placed into zeros.
    fn dense(&self) -> OpResult<FloatValue> {
        let whole: Box4 = stored4(&self.full).map(|d| 0..d);
        Ok(FloatValue::new(self.summed(&whole, &[self])?, &self.full))
    }

    /// `self + other` over the box around both.
    fn add(&self, other: &BoxGrad) -> OpResult<Grad> {
        if self.at == other.at {
            let sum = self.part.tensor.clone().add(other.part.tensor.clone());
            return Ok(BoxGrad::of_part(sum, self.at.clone(), self.full.clone()));
        }
        let at: Box4 = std::array::from_fn(|a| {
            self.at[a].start.min(other.at[a].start)..self.at[a].end.max(other.at[a].end)
        });
        let sum = self.summed(&at, &[self, other])?;
        Ok(BoxGrad::of_part(sum, at, self.full.clone()))
    }

    /// The same gradient with its box over every channel (axis 1), for a convolution.
    fn all_channels(&self) -> OpResult<BoxGrad> {
        let channels = stored4(&self.full)[1];
        let mut at = self.at.clone();
        at[1] = 0..channels;
        let part = match self.at == at {
            true => self.part.tensor.clone(),
            false => self.summed(&at, &[self])?,
        };
        Ok(BoxGrad {
            part: FloatValue::new(part, &at.clone().map(|r| r.len())),
            at,
            full: self.full.clone(),
        })
    }
}

/// The reverse step `step` for the output gradient `g`, by input name, where its ops say how
/// to carry a box ([`BoxRule`]). [`OpError::NoGradient`] where they do not: the caller makes
/// `g` whole and takes the step's own reverse step.
pub(super) fn backward<'a>(
    graph: &'a Graph,
    env: &'a Env,
    step: &'a Step,
    g: &BoxGrad,
    wanted: &[bool],
) -> OpResult<Vec<(&'a str, Grad)>> {
    let i = match step {
        Step::Node(i) => *i,
        Step::Fused(plan) => return fused(graph, env, plan, g),
    };
    let node = &graph.nodes[i];
    let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|n| graph.value(env, n)).collect();
    let output = env.get(&node.output).or_no_gradient()?;
    let grads = match node.op.box_rule(&inputs)? {
        BoxRule::Dense => return Err(OpError::NoGradient),
        BoxRule::Pointwise => pointwise(node.op.as_ref(), &inputs, output, g, wanted)?,
        BoxRule::Relabel => vec![relabel(&inputs, g)?],
        BoxRule::Moves(moves) => moved(&inputs, &moves, g, wanted)?,
        BoxRule::Conv => {
            let g = g.all_channels()?;
            let step = conv_step(&inputs, output, &g, [(0, 0); 2], None)?;
            vec![conv(node.op.as_ref(), step, &g)?]
        }
    };
    Ok(node
        .inputs
        .iter()
        .zip(grads)
        .filter_map(|(n, g)| Some((n.as_str(), g?)))
        .collect())
}

/// An element-wise op's step on the box: every input cut to it (where it broadcasts along an
/// axis, whole along that axis).
fn pointwise(
    op: &dyn Operator,
    inputs: &[Option<&Value>],
    output: &Value,
    g: &BoxGrad,
    wanted: &[bool],
) -> OpResult<Vec<Option<Grad>>> {
    let Value::Float(y) = output else {
        return Err(OpError::NoGradient);
    };
    let out = stored4(&g.full);
    if y.shape() != g.full {
        return Err(OpError::NoGradient);
    }
    let mut boxes = Vec::with_capacity(inputs.len());
    let mut cuts = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input {
            Some(Value::Float(x)) if x.rank <= MAX_RANK => {
                let dims = x.tensor.dims();
                let mut at = g.at.clone();
                for (a, r) in at.iter_mut().enumerate() {
                    match dims[a] {
                        d if d == out[a] => {}
                        1 => *r = 0..1,
                        _ => return Err(OpError::NoGradient),
                    }
                }
                cuts.push(Some(Value::Float(cut(x, &at))));
                boxes.push(Some(at));
            }
            Some(Value::Float(_)) => return Err(OpError::NoGradient),
            other => {
                cuts.push(other.cloned());
                boxes.push(None);
            }
        }
    }
    let output = Value::Float(cut(y, &g.at));
    let refs: Vec<Option<&Value>> = cuts.iter().map(Option::as_ref).collect();
    let grads = op.backward(Backward {
        inputs: &refs,
        output: &output,
        wanted,
        grad: g.part.clone(),
        pad: [(0, 0); 2],
        gate: None,
    })?;
    grads
        .into_iter()
        .zip(boxes)
        .zip(inputs)
        .map(|((gi, at), x)| match (gi, at, x) {
            (None, ..) => Ok(None),
            (Some(gi), Some(at), Some(Value::Float(x))) => {
                Ok(Some(BoxGrad::of_part(gi.tensor, at, x.shape())))
            }
            _ => Err(OpError::NoGradient),
        })
        .collect()
}

/// A reshape's step: the box's values are a box of the input too, where they are one.
fn relabel(inputs: &[Option<&Value>], g: &BoxGrad) -> OpResult<Option<Grad>> {
    let Some(Some(Value::Float(x))) = inputs.first() else {
        return Err(OpError::NoGradient);
    };
    if x.rank > MAX_RANK {
        return Err(OpError::NoGradient);
    }
    let at = relabelled(&g.at, stored4(&g.full), x.tensor.dims()).or_no_gradient()?;
    let part = g.part.tensor.clone().reshape(at.clone().map(|r| r.len()));
    Ok(Some(BoxGrad::of_part(part, at, x.shape())))
}

/// The box of a `to`-shaped tensor holding the values the box `at` holds in the same values
/// shaped `from` (row-major, as a reshape keeps them); `None` where they are not a box. Each
/// run of `at` along the last axis is a range of flat positions; the box around the runs'
/// positions in `to` holds them all, and is theirs exactly when it holds no more values
/// (then both list the values in the same, flat, order).
fn relabelled(at: &Box4, from: [usize; MAX_RANK], to: [usize; MAX_RANK]) -> Option<Box4> {
    let flat = |i: [usize; MAX_RANK]| -> usize { (0..MAX_RANK).fold(0, |f, a| f * from[a] + i[a]) };
    let coords = |mut f: usize| -> [usize; MAX_RANK] {
        let mut c = [0; MAX_RANK];
        for a in (0..MAX_RANK).rev() {
            c[a] = f % to[a];
            f /= to[a];
        }
        c
    };
    let (mut lo, mut hi) = ([usize::MAX; MAX_RANK], [0; MAX_RANK]);
    for i in at[0].clone() {
        for j in at[1].clone() {
            for k in at[2].clone() {
                let first = flat([i, j, k, at[3].start]);
                let (s, e) = (coords(first), coords(first + at[3].len() - 1));
                let split = (0..MAX_RANK).find(|&a| s[a] != e[a]).unwrap_or(MAX_RANK);
                for a in 0..MAX_RANK {
                    let (l, h) = match a {
                        a if a < split => (s[a], s[a] + 1),
                        a if a == split => (s[a], e[a] + 1),
                        _ => (0, to[a]),
                    };
                    lo[a] = lo[a].min(l);
                    hi[a] = hi[a].max(h);
                }
            }
        }
    }
    let around: Box4 = std::array::from_fn(|a| lo[a]..hi[a]);
    (volume(&around) == volume(at)).then_some(around)
}

/// The step of an op that copies boxes of its inputs: each input's gradient is the part of
/// `g`'s box inside the output box it fills, moved to where it came from.
fn moved(
    inputs: &[Option<&Value>],
    moves: &[Move],
    g: &BoxGrad,
    wanted: &[bool],
) -> OpResult<Vec<Option<Grad>>> {
    let mut grads: Vec<Option<Grad>> = inputs.iter().map(|_| None).collect();
    for Move { input: i, from, to } in moves {
        if !wanted.get(*i).copied().unwrap_or(false) {
            continue;
        }
        let Some(Some(Value::Float(x))) = inputs.get(*i) else {
            return Err(OpError::NoGradient);
        };
        let (from, to) = (stored_box(from, x.rank)?, stored_box(to, g.full.len())?);
        let mut part_at = g.at.clone();
        let mut input_at = from.clone();
        let mut empty = false;
        for a in 0..MAX_RANK {
            if from[a].len() != to[a].len() {
                return Err(OpError::NoGradient);
            }
            let lo = g.at[a].start.max(to[a].start);
            let hi = g.at[a].end.min(to[a].end);
            empty |= lo >= hi;
            if !empty {
                part_at[a] = lo - g.at[a].start..hi - g.at[a].start;
                input_at[a] = from[a].start + lo - to[a].start..from[a].start + hi - to[a].start;
            }
        }
        if !empty {
            let part = g.part.tensor.clone().slice(part_at);
            grads[*i] = Some(BoxGrad::of_part(part, input_at, x.shape()));
        }
    }
    Ok(grads)
}

/// A convolution's reverse step on `g`'s box (over every channel), with its input and fused
/// padding, through the activation fused after it (`gate`, its output cut to the box).
fn conv_step<'a>(
    inputs: &'a [Option<&'a Value>],
    output: &'a Value,
    g: &BoxGrad,
    pad: [(usize, usize); 2],
    gate: Option<(Activation, &'a FloatValue)>,
) -> OpResult<Backward<'a>> {
    if g.full.len() != MAX_RANK || g.at[0] != (0..1) || g.full[0] != 1 {
        return Err(OpError::NoGradient);
    }
    Ok(Backward {
        inputs,
        output,
        wanted: &[true],
        grad: g.part.clone(),
        pad,
        gate,
    })
}

/// The convolution's input gradient over the region its box reads.
fn conv(op: &dyn Operator, step: Backward, g: &BoxGrad) -> OpResult<Option<Grad>> {
    let x = step.float(0).or_no_gradient()?.shape();
    let [_, _, rows, cols] = g.at.clone();
    Ok(op
        .box_input_grad(step, [rows, cols])?
        .map(|(dx, [rows, cols])| {
            let channels = dx.tensor.dims()[1];
            BoxGrad::of_part(dx.tensor, [0..1, 0..channels, rows, cols], x)
        }))
}

/// A fused group's step on the box: through the activation, to the residual, and through the
/// convolution (see `backprop::fused_backward`).
fn fused<'a>(
    graph: &'a Graph,
    env: &'a Env,
    plan: &'a Plan,
    g: &BoxGrad,
) -> OpResult<Vec<(&'a str, Grad)>> {
    let output = env.get(&graph.nodes[plan.last()].output).or_no_gradient()?;
    let mut g = g.all_channels()?;
    let mut y_cut = None;
    if let Some((_, activation)) = plan.activation {
        let Value::Float(y) = output else {
            return Err(OpError::NoGradient);
        };
        let y = cut(y, &g.at);
        if plan.add.is_some() {
            g.part = activation_grad(activation, &y, &g.part)?;
        } else {
            y_cut = Some((activation, y));
        }
    }
    let mut flows = Vec::new();
    if let Some((_, residual)) = &plan.add {
        let copy = BoxGrad::of_part(g.part.tensor.clone(), g.at.clone(), g.full.clone());
        flows.push((residual.as_str(), copy));
    }
    let FusedConv { input, inputs, pad } = FusedConv::of(graph, env, plan)?;
    let conv_node = &graph.nodes[plan.conv];
    let gate = y_cut.as_ref().map(|(a, y)| (*a, y));
    let step = conv_step(&inputs, output, &g, pad, gate)?;
    if let Some(dx) = conv(conv_node.op.as_ref(), step, &g)? {
        flows.push((input, dx));
    }
    Ok(flows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(ranges: [Range<usize>; 4]) -> Box4 {
        ranges
    }

    #[test]
    fn a_point_of_a_flat_axis_is_a_point_of_its_plane() {
        // YOLO's `[1, 144, 80, 80] -> [1, 144, 6400]`, backwards: anchor 6400 - 80 + 3.
        let at = boxed([0..1, 0..1, 64..144, 6323..6324]);
        let got = relabelled(&at, [1, 1, 144, 6400], [1, 144, 80, 80]);
        assert_eq!(got, Some(boxed([0..1, 64..144, 79..80, 3..4])));
    }

    #[test]
    fn whole_rows_relabel_and_ragged_runs_do_not() {
        // Rows 2..4 of a 5 x 6 plane are the flat range 12..24.
        let at = boxed([0..1, 0..3, 0..1, 12..24]);
        assert_eq!(
            relabelled(&at, [1, 3, 1, 30], [1, 3, 5, 6]),
            Some(boxed([0..1, 0..3, 2..4, 0..6]))
        );
        // 10..14 wraps from row 1 into row 2: no box holds exactly those values.
        let at = boxed([0..1, 0..1, 0..1, 10..14]);
        assert_eq!(relabelled(&at, [1, 1, 1, 30], [1, 1, 5, 6]), None);
        // A box of the plane is not a range of the flat axis unless it spans whole rows.
        let at = boxed([0..1, 0..1, 1..3, 2..4]);
        assert_eq!(relabelled(&at, [1, 1, 5, 6], [1, 1, 1, 30]), None);
        let at = boxed([0..1, 0..1, 1..3, 0..6]);
        assert_eq!(
            relabelled(&at, [1, 1, 5, 6], [1, 1, 1, 30]),
            Some(boxed([0..1, 0..1, 0..1, 6..18]))
        );
    }

    #[test]
    fn boxes_add_over_the_box_around_both_and_densify_in_place() {
        let device = burn::tensor::Device::flex();
        let part = |values: Vec<f32>, at: &Box4| {
            Tensor::<4>::from_data(
                burn::tensor::TensorData::new(values, at.clone().map(|r| r.len())),
                &device,
            )
        };
        let a_at = boxed([0..1, 0..1, 0..1, 1..3]);
        let b_at = boxed([0..1, 0..1, 0..1, 2..4]);
        let full = vec![1, 6];
        let Grad::Boxed(a) = BoxGrad::of_part(part(vec![1.0, 2.0], &a_at), a_at, full.clone())
        else {
            panic!("a box of 2 of 6 values stays a box");
        };
        let Grad::Boxed(b) = BoxGrad::of_part(part(vec![10.0, 20.0], &b_at), b_at, full) else {
            panic!("a box of 2 of 6 values stays a box");
        };
        let sum = Grad::Boxed(a).add(Grad::Boxed(b), "t").unwrap();
        let Grad::Boxed(s) = &sum else {
            panic!("two boxes add to a box");
        };
        assert_eq!(s.at, boxed([0..1, 0..1, 0..1, 1..4]));
        let dense = sum.dense().unwrap();
        assert_eq!(dense.shape(), vec![1, 6]);
        let values = host::with_floats(&dense.tensor, <[f32]>::to_vec).unwrap();
        assert_eq!(values, vec![0.0, 1.0, 12.0, 20.0, 0.0, 0.0]);
    }
}
