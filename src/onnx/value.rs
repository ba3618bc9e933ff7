//! Values flowing through the interpreted graph: float tensors on the Burn device, and small
//! integer tensors (shapes, axes, pads) kept on the host.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, OpError, Result};

/// What the value helpers return: a shape that does not fit is the op's error.
type Fits<T> = std::result::Result<T, OpError>;

/// The rank of the stored float tensors: every value is kept as a 4-D Burn tensor.
pub const MAX_RANK: usize = 4;

/// The largest logical float rank: rank-5 values (ShuffleNet's channel shuffle, ResNeSt's
/// split attention, MobileViT's attention heads) are stored with their first two axes merged.
pub const MAX_LOGICAL_RANK: usize = 5;

/// A float tensor of logical rank `rank` (0..=5), stored as a 4-D Burn tensor: leading
/// dimensions are 1 below rank 4 (NumPy broadcasting aligns trailing dimensions, so the padded
/// form broadcasts exactly like the logical one), and a rank-5 tensor `[a, b, c, d, e]` is
/// stored as `[a * b, c, d, e]` with `lead = a`. Ops that need axis 0 or 1 of a rank-5 tensor
/// on their own view it as a 5-D tensor ([`FloatValue::wide`]); [`FloatValue::physical_axis`]
/// refuses those axes, so no op can mistake the merged axis for one of them.
#[derive(Clone, Debug)]
pub struct FloatValue {
    /// The stored 4-D tensor.
    pub tensor: Tensor<4>,
    /// Logical rank.
    pub rank: usize,
    /// For rank 5: the size of logical axis 0 (stored axis 0 holds it times logical axis 1);
    /// 1 otherwise.
    pub lead: usize,
}

impl FloatValue {
    /// Wraps a 4-D tensor that is logically 4-D.
    pub fn nchw(tensor: Tensor<4>) -> Self {
        Self {
            tensor,
            rank: 4,
            lead: 1,
        }
    }

    /// Wraps a stored tensor whose logical shape is `shape` (with the same number of values).
    pub fn new(tensor: Tensor<4>, shape: &[usize]) -> Self {
        Self {
            tensor,
            rank: shape.len(),
            lead: if shape.len() == 5 { shape[0] } else { 1 },
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
        if self.rank == 5 {
            let lead = self.lead.max(1);
            return vec![lead, d[0] / lead, d[1], d[2], d[3]];
        }
        d[MAX_RANK - self.rank..].to_vec()
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

    /// Maps a (possibly negative) ONNX axis to the stored dimension. Axes 0 and 1 of a rank-5
    /// tensor are stored together and are refused.
    pub fn physical_axis(&self, axis: i64) -> Fits<usize> {
        let a = normalize_axis(axis, self.rank)?;
        match self.rank {
            5 if a < 2 => Err(OpError::Unsupported(format!(
                "axis {axis} of the rank-5 shape {:?} is not supported by this op",
                self.shape()
            ))),
            5 => Ok(a - 1),
            r => Ok(a + MAX_RANK - r),
        }
    }

    /// The tensor viewed as 5-D (leading 1s below rank 5).
    pub fn wide(&self) -> Tensor<5> {
        let shape = self.shape();
        let mut dims = [1usize; MAX_LOGICAL_RANK];
        dims[MAX_LOGICAL_RANK - shape.len()..].copy_from_slice(&shape);
        self.tensor.clone().reshape(dims)
    }

    /// A rank-5 value from a 5-D tensor.
    pub fn from_wide(t: Tensor<5>) -> Self {
        let [a, b, c, d, e] = t.dims();
        Self {
            tensor: t.reshape([a * b, c, d, e]),
            rank: 5,
            lead: a,
        }
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

/// The stored 4-D shape of a logical shape: leading ones below rank 4, the first two axes
/// merged at rank 5.
pub fn stored_shape(shape: &[usize]) -> Fits<[usize; MAX_RANK]> {
    match shape.len() {
        0..=MAX_RANK => {
            let mut out = [1; MAX_RANK];
            out[MAX_RANK - shape.len()..].copy_from_slice(shape);
            Ok(out)
        }
        MAX_LOGICAL_RANK => {
            let merged = shape[0]
                .checked_mul(shape[1])
                .ok_or_else(|| OpError::Shape(format!("tensor of shape {shape:?} is too large")))?;
            Ok([merged, shape[2], shape[3], shape[4]])
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
