//! Values flowing through the interpreted graph: float tensors on the Burn device, and small
//! integer tensors (shapes, axes, pads) kept on the host.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, OpError, Result};

/// What the value helpers return: a shape that does not fit is the op's error.
type Fits<T> = std::result::Result<T, OpError>;

/// The rank of the stored float tensors: every value is kept as a 4-D Burn tensor.
pub const MAX_RANK: usize = 4;

/// The rank of the wide view ([`FloatValue::wide`]) in which ops that need the merged axes
/// of a rank-5 tensor on their own work on it.
pub const WIDE_RANK: usize = 5;

/// The largest logical float rank: rank-5 values (ShuffleNet's channel shuffle, ResNeSt's
/// split attention, MobileViT's attention heads) and rank-6 ones (Swin's window partition,
/// `[B, H/w, w, W/w, w, C]`) are stored with their leading axes merged.
pub const MAX_LOGICAL_RANK: usize = 6;

/// A float tensor of logical rank `rank` (0..=6), stored as a 4-D Burn tensor: leading
/// dimensions are 1 below rank 4 (NumPy broadcasting aligns trailing dimensions, so the padded
/// form broadcasts exactly like the logical one), and a rank-5 or rank-6 tensor keeps its last
/// three axes and merges the others into stored axis 0 (`[a, b, c, d, e]` as `[a * b, c, d,
/// e]` with `lead = [a, 1]`; `[a, b, c, d, e, f]` as `[a * b * c, d, e, f]` with `lead = [a,
/// b]`). Ops that need axis 0 or 1 of a rank-5 tensor on their own view it as a 5-D tensor
/// ([`FloatValue::wide`]), a rank-6 one as 6-D ([`FloatValue::view`]);
/// [`FloatValue::physical_axis`] refuses the merged axes, so no op can mistake the merged axis
/// for one of them.
#[derive(Clone, Debug)]
pub struct FloatValue {
    /// The stored 4-D tensor.
    pub tensor: Tensor<4>,
    /// Logical rank.
    pub rank: usize,
    /// Above rank 4: the sizes of the merged logical axes but the last (`[a, 1]` at rank 5,
    /// `[a, b]` at rank 6); `[1, 1]` otherwise.
    pub lead: [usize; 2],
}

impl FloatValue {
    /// Wraps a 4-D tensor that is logically 4-D.
    pub fn nchw(tensor: Tensor<4>) -> Self {
        Self {
            tensor,
            rank: 4,
            lead: [1, 1],
        }
    }

    /// Wraps a stored tensor whose logical shape is `shape` (with the same number of values).
    pub fn new(tensor: Tensor<4>, shape: &[usize]) -> Self {
        Self {
            tensor,
            rank: shape.len(),
            lead: match *shape {
                [a, _, _, _, _] => [a, 1],
                [a, b, _, _, _, _] => [a, b],
                _ => [1, 1],
            },
        }
    }

    /// The same logical shape holding `tensor` (the result of a shape-preserving op).
    pub fn with_tensor(&self, tensor: Tensor<4>) -> Self {
        Self {
            tensor,
            rank: self.rank,
            lead: self.lead,
        }
    }

    /// Logical shape.
    pub fn shape(&self) -> Vec<usize> {
        let d = self.tensor.dims();
        let [a, b] = self.lead.map(|l| l.max(1));
        match self.rank {
            5 => vec![a, d[0] / a, d[1], d[2], d[3]],
            6 => vec![a, b, d[0] / (a * b), d[1], d[2], d[3]],
            r => d[MAX_RANK - r..].to_vec(),
        }
    }

    /// Reshapes to a logical shape with the same element count.
    pub fn reshape(self, shape: &[usize]) -> Fits<Self> {
        let stored = stored_shape(shape)?;
        let have: usize = self.tensor.dims().iter().product();
        if crate::budget::elements(shape) != Some(have) {
            return Err(OpError::Shape(format!(
                "cannot reshape {:?} ({have} values) into {shape:?}",
                self.shape()
            )));
        }
        Ok(Self::new(self.tensor.reshape(stored), shape))
    }

    /// Maps a (possibly negative) ONNX axis to the stored dimension. The axes merged into
    /// stored axis 0 (all but the last three above rank 4) are refused.
    pub fn physical_axis(&self, axis: i64) -> Fits<usize> {
        let a = normalize_axis(axis, self.rank)?;
        match self.rank {
            r if r > MAX_RANK && a < r - 3 => Err(OpError::Unsupported(format!(
                "axis {axis} of the rank-{r} shape {:?} is not supported by this op",
                self.shape()
            ))),
            r => Ok(a + MAX_RANK - r),
        }
    }

    /// The tensor viewed as 5-D (leading 1s below rank 5); rank 5 at most.
    pub fn wide(&self) -> Tensor<5> {
        self.view()
    }

    /// A rank-5 value from a 5-D tensor.
    pub fn from_wide(t: Tensor<5>) -> Self {
        Self::from_view(t)
    }

    /// The tensor viewed as `D`-D (leading 1s below rank `D`), for `D` from its rank up to
    /// [`MAX_LOGICAL_RANK`].
    pub fn view<const D: usize>(&self) -> Tensor<D> {
        let shape = self.shape();
        assert!(
            shape.len() <= D,
            "a rank-{} tensor viewed as {D}-D",
            shape.len()
        );
        let mut dims = [1usize; D];
        dims[D - shape.len()..].copy_from_slice(&shape);
        self.tensor.clone().reshape(dims)
    }

    /// A rank-`D` value from a `D`-D tensor (`D` from 4 to [`MAX_LOGICAL_RANK`]).
    pub fn from_view<const D: usize>(t: Tensor<D>) -> Self {
        let dims = t.dims();
        let stored = stored_shape(&dims).expect("a view's rank is supported");
        Self::new(t.reshape(stored), &dims)
    }

    /// Whether a value of logical shape `operand` broadcasts to `out` (rank 6) in the stored
    /// form: its merged axes either all 1 or the same as the output's.
    pub fn broadcasts_stored(operand: &[usize], out: &[usize]) -> bool {
        let merged = out.len().saturating_sub(3);
        let offset = out.len() - operand.len().min(out.len());
        let lead: Vec<usize> = (0..merged)
            .map(|i| if i < offset { 1 } else { operand[i - offset] })
            .collect();
        lead.iter().all(|&d| d == 1) || lead == out[..merged]
    }

    /// Builds a tensor on `device` from host data and a logical shape.
    pub fn from_host(values: Vec<f32>, shape: &[usize], device: &Device) -> Fits<Self> {
        let stored = stored_shape(shape)?;
        if crate::budget::elements(shape) != Some(values.len()) {
            return Err(OpError::Data(format!(
                "{} values for a tensor of shape {shape:?}",
                values.len()
            )));
        }
        let tensor = Tensor::<4>::from_data(TensorData::new(values, stored), device);
        Ok(Self::new(tensor, shape))
    }
}

/// Reads a tensor back to the host as `f32` values.
pub fn host_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("cannot read a tensor back from the device: {e:?}")))
}

/// The stored 4-D shape of a logical shape: leading ones below rank 4, all but the last three
/// axes merged above.
pub fn stored_shape(shape: &[usize]) -> Fits<[usize; MAX_RANK]> {
    match shape.len() {
        0..=MAX_RANK => {
            let mut out = [1; MAX_RANK];
            out[MAX_RANK - shape.len()..].copy_from_slice(shape);
            Ok(out)
        }
        r @ 5..=MAX_LOGICAL_RANK => {
            let (lead, last) = shape.split_at(r - 3);
            let merged = lead
                .iter()
                .try_fold(1usize, |m, &d| m.checked_mul(d))
                .ok_or_else(|| OpError::Shape(format!("tensor of shape {shape:?} is too large")))?;
            Ok([merged, last[0], last[1], last[2]])
        }
        _ => Err(OpError::Unsupported(format!(
            "tensor of rank {} (shape {shape:?}) exceeds the supported rank {MAX_LOGICAL_RANK}",
            shape.len()
        ))),
    }
}

/// Resolves a negative ONNX axis against a rank.
pub fn normalize_axis(axis: i64, rank: usize) -> Fits<usize> {
    let r = rank as i64;
    let a = if axis < 0 {
        axis.saturating_add(r)
    } else {
        axis
    };
    if a < 0 || a >= r {
        return Err(OpError::Shape(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// A value in the graph.
// A Burn tensor handle is ~700 bytes; boxing it would add an allocation per node output for no
// gain (values are moved a few times per node, next to a whole tensor op).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Value {
    /// A float tensor on the device.
    Float(FloatValue),
    /// An integer tensor on the host (shape arithmetic).
    Int(ArrayD<i64>),
}

impl Value {
    /// A host integer vector.
    pub fn ints(values: Vec<i64>) -> Self {
        let n = values.len();
        Value::Int(ArrayD::from_shape_vec(IxDyn(&[n]), values).expect("1-D shape matches length"))
    }

    /// The values on the host as `f32` (reads the device for float tensors).
    pub fn host_floats(&self) -> Result<Vec<f32>> {
        match self {
            Value::Float(f) => host_values(f.tensor.clone()),
            Value::Int(a) => Ok(a.iter().map(|&v| v as f32).collect()),
        }
    }

    /// Logical shape of either kind.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Value::Float(f) => f.shape(),
            Value::Int(a) => a.shape().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values `0..n` as a float value of logical `shape`.
    fn iota(shape: &[usize]) -> FloatValue {
        let n = shape.iter().product::<usize>();
        let values = (0..n).map(|v| v as f32).collect();
        FloatValue::from_host(values, shape, &Device::flex()).unwrap()
    }

    #[test]
    fn rank_six_keeps_its_logical_shape_and_refuses_its_merged_axes() {
        let v = iota(&[2, 3, 4, 5, 6, 7]);
        assert_eq!(v.tensor.dims(), [24, 5, 6, 7]);
        assert_eq!(v.shape(), [2, 3, 4, 5, 6, 7]);
        assert_eq!(stored_shape(&[2, 3, 4, 5, 6, 7]).unwrap(), [24, 5, 6, 7]);
        assert_eq!(
            [3, 4, 5, -1].map(|a| v.physical_axis(a).unwrap()),
            [1, 2, 3, 3]
        );
        let refused = v.physical_axis(2).unwrap_err().to_string();
        assert!(
            refused.contains("axis 2 of the rank-6 shape [2, 3, 4, 5, 6, 7] is not supported"),
            "{refused}"
        );
        let seven = stored_shape(&[1; 7]).unwrap_err().to_string();
        assert!(
            seven.contains(
                "tensor of rank 7 (shape [1, 1, 1, 1, 1, 1, 1]) exceeds the supported rank 6"
            ),
            "{seven}"
        );
    }

    #[test]
    fn a_rank_six_view_permutes_as_the_logical_tensor() {
        // Swin's window partition: [B, H/w, w, W/w, w, C] with axes 2 and 3 swapped.
        let v = iota(&[1, 2, 2, 3, 2, 1]);
        let t = FloatValue::from_view(v.view::<6>().permute([0, 1, 3, 2, 4, 5]));
        assert_eq!(t.shape(), [1, 2, 3, 2, 2, 1]);
        let got = host_values(t.tensor).unwrap();
        // Element [0, a, b, c, d, 0] of the result is element [0, a, c, b, d, 0] of the input.
        let mut want = Vec::new();
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..2 {
                    for d in 0..2 {
                        want.push((((a * 2 + c) * 3 + b) * 2 + d) as f32);
                    }
                }
            }
        }
        assert_eq!(got, want);
        // A rank-5 value seen as 6-D gains a leading 1 and comes back as rank 6.
        let five = iota(&[2, 3, 4, 5, 6]);
        assert_eq!(five.view::<6>().dims(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(five.lead, [2, 1]);
    }

    #[test]
    fn rank_six_broadcasts_in_its_stored_form_only_where_that_is_exact() {
        let out = [2, 3, 4, 5, 6, 7];
        assert!(FloatValue::broadcasts_stored(&[7], &out));
        assert!(FloatValue::broadcasts_stored(&[5, 1, 7], &out));
        assert!(FloatValue::broadcasts_stored(&[1, 1, 1, 5, 6, 7], &out));
        assert!(FloatValue::broadcasts_stored(&out, &out));
        // A merged axis of its own (4 against 2·3·4) would broadcast wrongly when stored.
        assert!(!FloatValue::broadcasts_stored(&[4, 5, 6, 7], &out));
        assert!(!FloatValue::broadcasts_stored(&[1, 3, 1, 5, 6, 7], &out));
    }
}
