//! Shape plumbing: `Shape`, `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Reshape`, `Flatten`,
//! `ConstantOfShape`, `Slice`, `Transpose` and `Cast`.
//!
//! Integer tensors (the `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` chains exporters
//! emit) are computed on the host with `ndarray`; float tensors stay on the device.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ndarray::{ArrayD, Axis, IxDyn, Slice as NdSlice};

use super::inputs::{int_input, missing, optional_ints};
use super::operator::{Backward, BoxRule, BuildContext, Move, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::onnx::proto::{HostTensor, host_tensor};
use crate::onnx::value::{
    FloatValue, MAX_LOGICAL_RANK, MAX_RANK, Value, WIDE_RANK, normalize_axis, stored_shape,
};

enum ShapeOp {
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
        /// Which inputs are float constants with a batch of 1 in a fixed-batch model (the new
        /// exporter folds ViT's class token, expanded to that batch, into one): they are
        /// repeated to the run's batch when joined along another axis.
        batch_one: Vec<bool>,
    },
    Reshape {
        allow_zero: bool,
        /// The constant target starts with a batch of 1 baked in by a fixed-batch export: the
        /// run's batch replaces it (the same target at batch 1).
        follow_batch: bool,
        /// Any other target in a fixed-batch model, where the input carries the run's batch
        /// on its first axis: see [`batch_folded`].
        fixed_batch: bool,
        /// Whether the target is a constant (not computed from shapes at run time).
        constant_target: bool,
    },
    Flatten {
        axis: i64,
    },
    ConstantOfShape {
        value: HostTensor,
        device: Device,
    },
    Slice {
        attrs: Option<[Vec<i64>; 3]>,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Cast {
        to_float: bool,
        device: Device,
    },
}

struct Node(ShapeOp);

/// An `ndarray` shape error as the op's.
fn err<E: std::fmt::Display>(e: E) -> OpError {
    OpError::Shape(e.to_string())
}

/// A missing required attribute.
fn required(name: &str) -> OpError {
    OpError::Attribute(format!("{name} is required"))
}

/// Builds a shape-manipulation node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let axes_attr = |limit: i64| {
        if ctx.opset < limit {
            a.ints("axes")
        } else {
            None
        }
    };
    let op = match ctx.node.op_type.as_str() {
        "Shape" => ShapeOp::Shape {
            start: a.int("start", 0),
            end: ctx
                .node
                .attribute
                .iter()
                .any(|x| x.name == "end")
                .then(|| a.int("end", 0)),
        },
        "Gather" => ShapeOp::Gather {
            axis: a.int("axis", 0),
        },
        "Unsqueeze" => ShapeOp::Unsqueeze {
            axes: axes_attr(13),
        },
        "Squeeze" => ShapeOp::Squeeze {
            axes: axes_attr(13),
        },
        "Concat" => ShapeOp::Concat {
            axis: a.int("axis", 0),
            batch_one: ctx
                .node
                .input
                .iter()
                .map(|name| {
                    ctx.fixed_batch
                        && matches!(ctx.constants.get(name),
                            Some(HostTensor::Float(_, shape)) if shape.len() >= 2 && shape[0] == 1)
                })
                .collect(),
        },
        "Reshape" => ShapeOp::Reshape {
            allow_zero: a.int("allowzero", 0) != 0,
            follow_batch: ctx.batch_one_shape(1),
            fixed_batch: ctx.fixed_batch,
            constant_target: ctx
                .node
                .input
                .get(1)
                .is_some_and(|n| ctx.constants.contains_key(n)),
        },
        "Flatten" => ShapeOp::Flatten {
            axis: a.int("axis", 1),
        },
        "ConstantOfShape" => ShapeOp::ConstantOfShape {
            value: match a.tensor("value") {
                Some(t) => host_tensor(t)?,
                None => HostTensor::Float(vec![0.0], vec![1]),
            },
            device: ctx.device.clone(),
        },
        "Slice" => ShapeOp::Slice {
            attrs: if ctx.opset < 10 {
                let starts = a.ints("starts").ok_or_else(|| required("starts"))?;
                let ends = a.ints("ends").ok_or_else(|| required("ends"))?;
                let axes = a
                    .ints("axes")
                    .unwrap_or_else(|| (0..starts.len() as i64).collect());
                Some([starts, ends, axes])
            } else {
                None
            },
        },
        "Transpose" => ShapeOp::Transpose {
            perm: a.ints("perm"),
        },
        "Cast" => ShapeOp::Cast {
            to_float: matches!(a.int("to", 1), 1 | 10 | 11 | 16),
            device: ctx.device.clone(),
        },
        other => return Err(OpError::Unsupported(format!("`{other}` is not a shape op"))),
    };
    Ok(Box::new(Node(op)))
}

fn int_to_float(a: &ArrayD<i64>, device: &Device) -> OpResult<FloatValue> {
    FloatValue::from_host(a.iter().map(|&v| v as f32).collect(), a.shape(), device)
}

/// The target shape at input `i`, its first entry replaced by the run's batch when
/// `follow_batch` (a fixed-batch export's `[1, ...]`: unchanged at batch 1; at batch N the
/// images stay on the first axis, whatever the input's first axis holds — MobileViT folds
/// the batch with patches there).
fn target_spec(inputs: &[Option<Value>], i: usize, follow_batch: bool) -> OpResult<Vec<i64>> {
    let mut spec: Vec<i64> = int_input(inputs, i)?.iter().copied().collect();
    if follow_batch && let Some(first) = spec.first_mut() {
        *first = crate::budget::batch() as i64;
    }
    Ok(spec)
}

/// A fixed-batch export's `Reshape` target at the run's batch N > 1 whose input holds the
/// images outermost on its first axis (N or a multiple of it), where the target holds one
/// image's values (its entries given, or, in a `constant` target, one `-1` that one image's
/// values resolve; a computed one traced from the input's shape already holds N): its first
/// entry times N, the images kept outermost as PyTorch folds them. Swin's patch merging
/// assembles `[1, H/2, 2, W/2, 2, C]` from the input's shape; its window partition, traced at
/// batch 1, reshapes `[B·nW, w, w, C]` to the constant `[nW, w·w, C]`, its attention output to
/// `[nW, w·w, -1]`.
fn batch_folded(spec: &mut [i64], input: &[usize], constant: bool) {
    let batch = crate::budget::batch();
    if batch <= 1
        || !input
            .first()
            .is_some_and(|&d| d > 0 && d.is_multiple_of(batch))
    {
        return;
    }
    let one_image = input.iter().product::<usize>() / batch;
    let given = spec.iter().filter(|&&d| d > 0);
    let known = given
        .clone()
        .try_fold(1usize, |p, &d| p.checked_mul(d as usize));
    let unknown = spec.len() - given.count();
    let resolved = match (known, unknown) {
        (Some(k), 0) if k == one_image => None,
        (Some(k), 1) if constant && one_image.is_multiple_of(k) && spec.contains(&-1) => {
            Some((one_image / k) as i64)
        }
        _ => return,
    };
    if let Some(d) = resolved {
        spec.iter_mut().filter(|d| **d == -1).for_each(|v| *v = d);
    }
    spec[0] *= batch as i64;
}

/// ONNX `Reshape` target: `0` copies the input dim (unless `allow_zero`), `-1` is inferred.
fn reshape_target(input: &[usize], spec: &[i64], allow_zero: bool) -> OpResult<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(*input.get(i).ok_or_else(|| {
                OpError::Shape("0 in shape refers to a missing input dim".into())
            })?),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(OpError::Shape(format!("invalid target shape {spec:?}"))),
        }
    }
    let overflow = || OpError::Shape(format!("target shape {spec:?} overflows"));
    let known = crate::budget::elements(&out).ok_or_else(overflow)?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(OpError::Shape(format!(
                "cannot reshape {input:?} into {spec:?}"
            )));
        }
        out[i] = total / known;
    }
    if crate::budget::elements(&out).ok_or_else(overflow)? != total {
        return Err(OpError::Shape(format!(
            "cannot reshape {input:?} ({total} values) into {out:?}"
        )));
    }
    Ok(out)
}

fn reshape_value(v: Value, shape: &[usize]) -> OpResult<Value> {
    match v {
        Value::Float(f) => f.reshape(shape).map(Value::Float),
        Value::Int(a) => a
            .into_shape_with_order(IxDyn(shape))
            .map(Value::Int)
            .map_err(err),
    }
}

fn unsqueezed(shape: &[usize], axes: &[i64]) -> OpResult<Vec<usize>> {
    let rank = shape.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<_, _>>()?;
    axes.sort_unstable();
    let mut out = shape.to_vec();
    for a in axes {
        out.insert(a, 1);
    }
    Ok(out)
}

fn squeezed(shape: &[usize], axes: Option<&[i64]>) -> OpResult<Vec<usize>> {
    let drop: Vec<usize> = match axes {
        Some(axes) => axes
            .iter()
            .map(|&a| normalize_axis(a, shape.len()))
            .collect::<Result<_, _>>()?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    if drop.iter().any(|&a| shape[a] != 1) {
        return Err(OpError::Shape(format!(
            "cannot squeeze axes {drop:?} of shape {shape:?}"
        )));
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, &d)| d)
        .collect())
}

/// One axis of an ONNX `Slice`, clamped like the spec, as an `ndarray` slice.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> OpResult<NdSlice> {
    if step == 0 {
        return Err(OpError::Attribute("slice step must not be zero".into()));
    }
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v + d } else { v };
    let (start, end) = (fix(start), fix(end));
    Ok(if step > 0 {
        let (s, e) = (start.clamp(0, d), end.clamp(0, d));
        NdSlice::new(s as isize, Some(e.max(s) as isize), step as isize)
    } else {
        let (s, e) = (start.clamp(0, d - 1), end.clamp(-1, d - 1));
        // numpy walks s, s+step, ... > e; ndarray reverses the range [e+1, s+1).
        NdSlice::new(
            (e + 1) as isize,
            Some((s + 1).max(e + 1) as isize),
            step as isize,
        )
    })
}

impl Node {
    /// A `Slice`'s window over its input of `shape`: one `ndarray` slice per axis.
    fn slice_plan(&self, inputs: &[Option<Value>], shape: &[usize]) -> OpResult<Vec<NdSlice>> {
        let [starts, ends, axes] = match &self.0 {
            ShapeOp::Slice { attrs: Some(a) } => a.clone(),
            _ => {
                let starts: Vec<i64> = int_input(inputs, 1)?.iter().copied().collect();
                let ends = int_input(inputs, 2)?.iter().copied().collect();
                let axes =
                    optional_ints(inputs, 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                [starts, ends, axes]
            }
        };
        let steps = optional_ints(inputs, 4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
            return Err(OpError::Shape(
                "starts, ends, axes and steps must have the same length".into(),
            ));
        }
        let mut plan: Vec<NdSlice> = shape.iter().map(|_| NdSlice::from(..)).collect();
        for i in 0..starts.len() {
            let axis = normalize_axis(axes[i], shape.len())?;
            plan[axis] = slice_axis(shape[axis], starts[i], ends[i], steps[i])?;
        }
        Ok(plan)
    }

    /// Where a `Slice` of a tensor of `shape` takes its values from, per axis; unit steps
    /// only ([`OpError::NoGradient`] otherwise: its reverse steps are not covered).
    fn slice_ranges(
        &self,
        inputs: &[Option<Value>],
        shape: &[usize],
    ) -> OpResult<Vec<std::ops::Range<usize>>> {
        let plan = self.slice_plan(inputs, shape)?;
        let mut ranges = Vec::with_capacity(plan.len());
        for (axis, s) in plan.iter().enumerate() {
            let end = s.end.map_or(shape[axis], |e| e as usize);
            let start = s.start as usize;
            if s.step != 1 && end > start + 1 {
                return Err(OpError::NoGradient);
            }
            ranges.push(start..end.max(start));
        }
        Ok(ranges)
    }

    fn slice(&self, inputs: &[Option<Value>]) -> OpResult<Value> {
        let data = inputs
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| missing(0))?;
        let shape = data.shape();
        let plan = self.slice_plan(inputs, &shape)?;
        match data {
            Value::Int(a) => Ok(Value::Int(
                a.slice_each_axis(|ax| plan[ax.axis.index()]).to_owned(),
            )),
            Value::Float(f) => {
                let mut cuts = Vec::new();
                for (axis, s) in plan.iter().enumerate() {
                    let dim = shape[axis];
                    let end = s.end.map_or(dim, |e| e as usize);
                    let start = s.start as usize;
                    if s.step != 1 && end > start + 1 {
                        return Err(OpError::Unsupported(
                            "strided slices of float tensors are not supported".into(),
                        ));
                    }
                    if end <= start {
                        let mut out = shape.clone();
                        out[axis] = 0;
                        return Err(empty_result(&out));
                    }
                    if (start, end) != (0, dim) {
                        cuts.push((axis, start, end - start));
                    }
                }
                if f.rank == WIDE_RANK {
                    // The new exporter slices q, k and v off axis 0 of a rank-5 tensor.
                    let mut t = f.wide();
                    for (axis, start, len) in cuts {
                        t = t.narrow(axis, start, len);
                    }
                    return Ok(Value::Float(FloatValue::from_wide(t)));
                }
                let mut t = f.tensor.clone();
                for (axis, start, len) in cuts {
                    let physical = f.physical_axis(axis as i64)?;
                    t = t.narrow(physical, start, len);
                }
                Ok(Value::Float(f.with_tensor(t)))
            }
        }
    }
}

/// A float `Slice`'s input gradient: the output's gradient in the window it was cut from,
/// zeros around it (unit steps).
fn slice_backward(node: &Node, step: &Backward) -> OpResult<Vec<Option<FloatValue>>> {
    let x = step
        .float(0)
        .filter(|_| step.only_first())
        .or_no_gradient()?;
    let ranges = node.slice_ranges(&step.owned_inputs(), &x.shape())?;
    // Any rank: the new exporter slices q, k and v off a rank-5 tensor's first axis.
    Ok(vec![step.placed(x, &ranges)])
}

/// `Gather`'s input gradient for one index (a transformer's class token, `x[:, 0]`): the
/// output's gradient at that index along `axis`, zeros elsewhere. Gathers of several indices
/// (which may repeat, and would add up) take Burn's autodiff.
fn gather_backward(step: &Backward, axis: i64) -> OpResult<Vec<Option<FloatValue>>> {
    let x = step
        .float(0)
        .filter(|x| step.only_first() && x.rank < WIDE_RANK)
        .or_no_gradient()?;
    let index = int_input(&step.owned_inputs(), 1)?;
    let &[i] = index.as_slice().unwrap_or_default() else {
        return Err(OpError::NoGradient);
    };
    let mut shape = x.shape();
    let axis = normalize_axis(axis, shape.len())?;
    let i = if i < 0 { i + shape[axis] as i64 } else { i };
    if !(0..shape[axis] as i64).contains(&i) {
        return Err(OpError::Data(format!("index {i} out of range")));
    }
    shape[axis] = 1;
    let g = step.grad.clone().reshape(&shape)?;
    let mut window = x.tensor.dims().map(|d| 0..d);
    window[x.physical_axis(axis as i64)?] = i as usize..i as usize + 1;
    let placed = x.tensor.zeros_like().slice_assign(window, g.tensor);
    Ok(vec![Some(x.with_tensor(placed))])
}

/// `Concat`'s input gradients: the slices of the output's gradient each input filled.
fn concat_backward(step: &Backward, axis: i64) -> OpResult<Vec<Option<FloatValue>>> {
    let g = &step.grad;
    let rank = g.shape().len();
    let axis = normalize_axis(axis, rank)?;
    // Above rank 4 in the 6-D view, where no axis is merged (YOLOv5 joins its boxes' parts
    // along the last axis of `[N, 3, h, w, 5 + classes]`).
    let wide = (rank >= WIDE_RANK).then(|| g.view::<MAX_LOGICAL_RANK>());
    let part = |offset: usize, size: usize, x: &FloatValue| -> OpResult<Tensor<4>> {
        match &wide {
            Some(v) => {
                let axis = axis + MAX_LOGICAL_RANK - rank;
                Ok(v.clone()
                    .narrow(axis, offset, size)
                    .reshape(stored_shape(&x.shape())?))
            }
            None => Ok(g
                .tensor
                .clone()
                .narrow(g.physical_axis(axis as i64)?, offset, size)),
        }
    };
    let length = g.shape()[axis];
    let mut offset = 0;
    let mut grads = Vec::with_capacity(step.inputs.len());
    for (i, input) in step.inputs.iter().enumerate() {
        let size = input.map_or(0, |v| v.shape().get(axis).copied().unwrap_or(0));
        if offset + size > length {
            return Err(OpError::Shape(format!(
                "the inputs do not fit the gradient of shape {:?}",
                g.shape()
            )));
        }
        grads.push(if step.wants(i) && size > 0 {
            let x = step.float(i).or_no_gradient()?;
            Backward::unless_zero(x, part(offset, size, x)?)
        } else {
            None
        });
        offset += size;
    }
    Ok(grads)
}

/// `Concat`'s boxes: input `i` whole at its offset along `axis` of the output.
fn concat_boxes(inputs: &[Option<&Value>], axis: i64) -> OpResult<BoxRule> {
    let mut moves = Vec::with_capacity(inputs.len());
    let mut offset = 0;
    for (i, input) in inputs.iter().enumerate() {
        let Some(x) = input else { continue };
        let shape = x.shape();
        let axis = normalize_axis(axis, shape.len())?;
        let whole: Vec<_> = shape.iter().map(|&d| 0..d).collect();
        let mut at = whole.clone();
        at[axis] = offset..offset + shape[axis];
        offset += shape[axis];
        moves.push(Move {
            input: i,
            from: whole,
            to: at,
        });
    }
    Ok(BoxRule::Moves(moves))
}

impl Operator for Node {
    /// The ops that move, copy or join values without computing new ones: the data inputs
    /// (every input of a `Concat`).
    fn affine_in(&self, i: usize) -> bool {
        match &self.0 {
            ShapeOp::Concat { .. } => true,
            ShapeOp::Gather { .. }
            | ShapeOp::Unsqueeze { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Slice { .. }
            | ShapeOp::Transpose { .. } => i == 0,
            ShapeOp::Shape { .. } | ShapeOp::ConstantOfShape { .. } | ShapeOp::Cast { .. } => false,
        }
    }

    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        match &self.0 {
            ShapeOp::Concat { axis, .. } => return concat_backward(&step, *axis),
            ShapeOp::Slice { .. } => return slice_backward(self, &step),
            ShapeOp::Gather { axis } => return gather_backward(&step, *axis),
            // No gradient flows into integers (a shape cast to float: attention's scale); a
            // float cast to float passes it through.
            ShapeOp::Cast { .. } if matches!(step.inputs.first(), Some(Some(Value::Int(_)))) => {
                return Ok(vec![None]);
            }
            ShapeOp::Cast { .. } => {}
            ShapeOp::Transpose { perm } => {
                step.float(0)
                    .filter(|_| step.only_first())
                    .or_no_gradient()?;
                // The gradient goes back through the inverse permutation.
                let rank = step.grad.shape().len();
                let perm = permutation(perm.as_deref(), rank)?;
                let mut inverse = vec![0i64; rank];
                for (i, &p) in perm.iter().enumerate() {
                    *inverse.get_mut(p).or_no_gradient()? = i as i64;
                }
                return match transpose(Value::Float(step.grad.clone()), Some(&inverse))? {
                    Value::Float(g) => Ok(vec![Some(g)]),
                    Value::Int(_) => Err(OpError::NoGradient),
                };
            }
            // The ops that only relabel the values: the gradient takes the input's shape back.
            ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Unsqueeze { .. } => {}
            _ => return Err(OpError::NoGradient),
        }
        let x = step
            .float(0)
            .filter(|_| step.only_first())
            .or_no_gradient()?;
        let g = step.grad.clone().reshape(&x.shape())?;
        Ok(vec![Some(g)])
    }

    fn box_rule(&self, inputs: &[Option<&Value>]) -> OpResult<BoxRule> {
        Ok(match &self.0 {
            ShapeOp::Concat { axis, .. } => return concat_boxes(inputs, *axis),
            ShapeOp::Slice { .. } => {
                let Some(Some(Value::Float(x))) = inputs.first() else {
                    return Ok(BoxRule::Dense);
                };
                let owned: Vec<Option<Value>> = inputs.iter().map(|v| v.cloned()).collect();
                let ranges = self.slice_ranges(&owned, &x.shape())?;
                let out = ranges.iter().map(|r| 0..r.len()).collect();
                BoxRule::Moves(vec![Move {
                    input: 0,
                    from: ranges,
                    to: out,
                }])
            }
            ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Unsqueeze { .. } => BoxRule::Relabel,
            _ => BoxRule::Dense,
        })
    }

    fn follows_batch(&self) -> bool {
        match &self.0 {
            ShapeOp::Reshape { follow_batch, .. } => *follow_batch,
            ShapeOp::Concat { batch_one, .. } => batch_one.contains(&true),
            _ => false,
        }
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let v = inputs.first().cloned().flatten().ok_or_else(|| missing(0));
        match &self.0 {
            ShapeOp::Shape { start, end } => Ok(shape_of(&v?.shape(), *start, *end)),
            ShapeOp::Gather { axis } => gather(v?, *axis, int_input(inputs, 1)?),
            ShapeOp::Unsqueeze { axes } => {
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => int_input(inputs, 1)?.iter().copied().collect(),
                };
                let v = v?;
                let shape = unsqueezed(&v.shape(), &axes)?;
                reshape_value(v, &shape)
            }
            ShapeOp::Squeeze { axes } => {
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => optional_ints(inputs, 1)?,
                };
                let v = v?;
                let shape = squeezed(&v.shape(), axes.as_deref())?;
                reshape_value(v, &shape)
            }
            ShapeOp::Concat { axis, batch_one } => {
                let batch = crate::budget::batch();
                let mut values = Vec::with_capacity(inputs.len());
                for (value, &one) in inputs
                    .iter()
                    .zip(batch_one.iter().chain(std::iter::repeat(&false)))
                {
                    match value {
                        Some(Value::Float(f))
                            if one
                                && batch > 1
                                && f.rank <= 4
                                && normalize_axis(*axis, f.rank)? != 0 =>
                        {
                            let axis0 = f.physical_axis(0)?;
                            let repeated = f.tensor.clone().repeat_dim(axis0, batch);
                            let mut shape = f.shape();
                            shape[0] = batch;
                            values.push(Value::Float(FloatValue::new(repeated, &shape)));
                        }
                        Some(v) => values.push(v.clone()),
                        None => {}
                    }
                }
                concat(values, *axis)
            }
            ShapeOp::Reshape {
                allow_zero,
                follow_batch,
                fixed_batch,
                constant_target,
            } => {
                let v = v?;
                let mut spec = target_spec(inputs, 1, *follow_batch)?;
                if *fixed_batch && !*follow_batch {
                    batch_folded(&mut spec, &v.shape(), *constant_target);
                }
                let shape = reshape_target(&v.shape(), &spec, *allow_zero)?;
                reshape_value(v, &shape)
            }
            ShapeOp::Flatten { axis } => {
                let v = v?;
                let shape = v.shape();
                let r = shape.len() as i64;
                let axis = if *axis < 0 { axis + r } else { *axis };
                if !(0..=r).contains(&axis) {
                    return Err(OpError::Shape(format!(
                        "axis {axis} is out of range for rank {r}"
                    )));
                }
                let (a, b) = shape.split_at(axis as usize);
                reshape_value(v, &[a.iter().product(), b.iter().product()])
            }
            ShapeOp::ConstantOfShape { value, device } => {
                constant_of_shape(&int_input(inputs, 0)?, value, device)
            }
            ShapeOp::Slice { .. } => self.slice(inputs),
            ShapeOp::Transpose { perm } => transpose(v?, perm.as_deref()),
            ShapeOp::Cast { to_float, device } => match (v?, to_float) {
                (Value::Int(a), true) => int_to_float(&a, device).map(Value::Float),
                (Value::Float(_), false) => Err(OpError::Unsupported(
                    "casting float tensors to integers is not supported".into(),
                )),
                (v, _) => Ok(v),
            },
        }
    }
}

/// `Shape`: the dims `start..end` of `shape` (negative ends count from the back, clamped).
fn shape_of(shape: &[usize], start: i64, end: Option<i64>) -> Value {
    let r = shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    Value::ints(shape[s..e.max(s)].iter().map(|&d| d as i64).collect())
}

/// `Gather` of `data` along `axis` at the host indices `idx`.
fn gather(data: Value, axis: i64, idx: ArrayD<i64>) -> OpResult<Value> {
    let data_shape = data.shape();
    let axis = normalize_axis(axis, data_shape.len())?;
    let dim = data_shape[axis] as i64;
    let picks: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            if (0..dim).contains(&j) {
                Ok(j as usize)
            } else {
                Err(OpError::Data(format!("index {i} out of range")))
            }
        })
        .collect::<OpResult<_>>()?;
    let mut shape = data_shape[..axis].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&data_shape[axis + 1..]);
    crate::budget::check_shape(&shape)?;
    match data {
        Value::Int(data) => data
            .select(Axis(axis), &picks)
            .into_shape_with_order(IxDyn(&shape))
            .map(Value::Int)
            .map_err(err),
        // Float data with constant indices (the new exporter's `as_strided`).
        Value::Float(f) => {
            if picks.is_empty() || data_shape.contains(&0) {
                return Err(empty_result(&shape));
            }
            let device = f.tensor.device();
            let picks: Vec<i64> = picks.iter().map(|&p| p as i64).collect();
            let n = picks.len();
            let index = Tensor::<1, Int>::from_data(TensorData::new(picks, [n]), &device);
            let selected = if f.rank == WIDE_RANK {
                // MobileViT's unbind of q, k, v: axis 0 of a rank-5 tensor.
                FloatValue::from_wide(f.wide().select(axis, index))
            } else {
                let physical = f.physical_axis(axis as i64)?;
                f.with_tensor(f.tensor.clone().select(physical, index))
            };
            selected.reshape(&shape).map(Value::Float)
        }
    }
}

/// An op would compute an empty float tensor of `shape`.
fn empty_result(shape: &[usize]) -> OpError {
    OpError::Unsupported(format!(
        "the result would be an empty tensor (shape {shape:?}); empty tensors are not supported"
    ))
}

/// `Concat` of `values` along `axis`: on the host when every value is an integer tensor, else
/// on the device (integer inputs converted).
fn concat(values: Vec<Value>, axis: i64) -> OpResult<Value> {
    let first_shape = values
        .first()
        .ok_or_else(|| OpError::Graph("needs inputs".into()))?
        .shape();
    let rank = first_shape.len();
    let axis_n = normalize_axis(axis, rank)?;
    let mut out = first_shape.clone();
    let mut length = 0usize;
    for v in &values {
        let shape = v.shape();
        let same_elsewhere =
            shape.len() == rank && (0..rank).all(|d| d == axis_n || shape[d] == first_shape[d]);
        if !same_elsewhere {
            return Err(OpError::Shape(format!(
                "Concat inputs {:?} and {shape:?} differ outside axis {axis_n}",
                first_shape
            )));
        }
        // The output holds every input: a tensor listed 10^6 times would be 10^6 copies.
        length = length
            .checked_add(shape[axis_n])
            .ok_or_else(|| OpError::Shape("the Concat output is too large".into()))?;
    }
    out[axis_n] = length;
    crate::budget::check_shape(&out)?;
    if values.iter().all(|v| matches!(v, Value::Int(_))) {
        let views: Vec<_> = values
            .iter()
            .filter_map(|v| match v {
                Value::Int(a) => Some(a.view()),
                Value::Float(_) => None,
            })
            .collect();
        return ndarray::concatenate(Axis(axis_n), &views)
            .map(Value::Int)
            .map_err(err);
    }
    // At least one float (checked above); empty inputs add nothing to the concatenation.
    let Some(first) = values.iter().find_map(|v| match v {
        Value::Float(f) => Some(f.clone()),
        Value::Int(_) => None,
    }) else {
        return Err(OpError::Type("Concat found no float input".into()));
    };
    if out.contains(&0) {
        return Err(empty_result(&out));
    }
    let device = first.tensor.device();
    let mut tensors = Vec::with_capacity(values.len());
    for v in &values {
        if v.shape()[axis_n] == 0 {
            continue;
        }
        tensors.push(match v {
            Value::Float(f) => f.tensor.clone(),
            Value::Int(a) => int_to_float(a, &device)?.tensor,
        });
    }
    let physical = first.physical_axis(axis_n as i64)?;
    Ok(Value::Float(
        first.with_tensor(Tensor::cat(tensors, physical)),
    ))
}

/// `ConstantOfShape`: a tensor of `shape` (negative dims read as 0) filled with `value`'s
/// first element.
fn constant_of_shape(shape: &ArrayD<i64>, value: &HostTensor, device: &Device) -> OpResult<Value> {
    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    crate::budget::check_shape(&shape)?;
    match value {
        HostTensor::Int(a) => {
            let fill = a.iter().next().copied().unwrap_or(0);
            Ok(Value::Int(ArrayD::from_elem(IxDyn(&shape), fill)))
        }
        HostTensor::Float(v, _) => {
            let fill = v.first().copied().unwrap_or(0.0);
            let n: usize = shape.iter().product();
            if n == 0 {
                return Err(empty_result(&shape));
            }
            FloatValue::from_host(vec![fill; n], &shape, device).map(Value::Float)
        }
    }
}

/// `f` (of rank `D`) with its axes permuted by `perm`.
fn permuted<const D: usize>(f: &FloatValue, perm: &[usize]) -> FloatValue {
    let perm: [usize; D] = std::array::from_fn(|i| perm[i]);
    FloatValue::from_view(f.view::<D>().permute(perm))
}

/// A `Transpose`'s `perm` over `rank` axes, negative axes resolved (default: reversed).
fn permutation(perm: Option<&[i64]>, rank: usize) -> OpResult<Vec<usize>> {
    match perm {
        Some(p) => p.iter().map(|&a| normalize_axis(a, rank)).collect(),
        None => Ok((0..rank).rev().collect()),
    }
}

/// `Transpose` of `v` by `perm` (default: the axes reversed), which must name every axis once.
fn transpose(v: Value, perm: Option<&[i64]>) -> OpResult<Value> {
    let rank = v.shape().len();
    let perm = permutation(perm, rank)?;
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(OpError::Attribute(format!(
            "perm {perm:?} is not a permutation of the {rank} axes"
        )));
    }
    match v {
        Value::Int(a) => Ok(Value::Int(
            a.permuted_axes(IxDyn(&perm))
                .as_standard_layout()
                .to_owned(),
        )),
        // Above rank 4 in the value's own rank (its leading axes are stored merged).
        Value::Float(f) if rank == WIDE_RANK => Ok(Value::Float(permuted::<WIDE_RANK>(&f, &perm))),
        Value::Float(f) if rank > WIDE_RANK => Ok(Value::Float(permuted::<6>(&f, &perm))),
        Value::Float(f) => {
            let offset = MAX_RANK - rank;
            let mut full: [usize; MAX_RANK] = std::array::from_fn(|i| i);
            for (i, &p) in perm.iter().enumerate() {
                full[offset + i] = offset + p;
            }
            Ok(Value::Float(f.with_tensor(f.tensor.clone().permute(full))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batch_folded;

    /// `spec` folded for `input` at `batch`.
    fn folded(batch: usize, spec: &[i64], input: &[usize], constant: bool) -> Vec<i64> {
        let mut spec = spec.to_vec();
        crate::budget::with_batch(batch, || batch_folded(&mut spec, input, constant));
        spec
    }

    #[test]
    fn a_fixed_batch_target_holding_one_image_takes_the_batch_outermost() {
        // Swin's patch merging, computed from the input's shape: [1, ...] becomes [N, ...].
        let merge = [1, 4, 2, 4, 2, 32];
        assert_eq!(
            folded(3, &merge, &[3, 8, 8, 32], false),
            [3, 4, 2, 4, 2, 32]
        );
        // Its windows traced at batch 1: [nW, w·w, C] becomes [N·nW, w·w, C], the input
        // holding the images outermost on a first axis of N·nW.
        let windows = [16, 16, 16];
        assert_eq!(folded(2, &windows, &[32, 4, 4, 16], true), [32, 16, 16]);
        // One -1 resolved from one image's values, in a constant target only.
        assert_eq!(
            folded(2, &[16, 16, -1], &[32, 16, 1, 16], true),
            [32, 16, 16]
        );
        assert_eq!(
            folded(2, &[16, 16, -1], &[32, 16, 1, 16], false),
            [16, 16, -1]
        );
        // A computed target that already holds every image, batch 1, a first axis that is not
        // the images', or a 0 entry: as it is.
        assert_eq!(folded(2, &[2, 32, 64], &[2, 32, 8, 8], false), [2, 32, 64]);
        assert_eq!(folded(1, &windows, &[16, 4, 4, 16], true), windows);
        assert_eq!(folded(2, &windows, &[3, 1024], true), windows);
        assert_eq!(folded(2, &[0, 16, 16], &[32, 4, 4, 16], true), [0, 16, 16]);
    }
}
