//! Values flowing through the interpreted graph: float tensors on the Burn device, and small
//! integer tensors (shapes, axes, pads) kept on the host.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};

/// The largest float rank the interpreter handles (CNN graphs stay within NCHW).
pub const MAX_RANK: usize = 4;

/// A float tensor of logical rank `rank` (0..=4), stored as a 4-D Burn tensor whose leading
/// dimensions are 1. NumPy broadcasting aligns trailing dimensions, so the padded form
/// broadcasts exactly like the logical one.
#[derive(Clone, Debug)]
pub struct FloatValue {
    /// The padded 4-D tensor.
    pub tensor: Tensor<4>,
    /// Logical rank.
    pub rank: usize,
}

impl FloatValue {
    /// Wraps a 4-D tensor that is logically 4-D.
    pub fn nchw(tensor: Tensor<4>) -> Self {
        Self { tensor, rank: 4 }
    }

    /// Logical shape.
    pub fn shape(&self) -> Vec<usize> {
        self.tensor.dims()[MAX_RANK - self.rank..].to_vec()
    }

    /// Reshapes to a logical shape with the same element count.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let padded = padded_shape(shape)?;
        Ok(Self {
            tensor: self.tensor.reshape(padded),
            rank: shape.len(),
        })
    }

    /// Maps a (possibly negative) ONNX axis to the physical dimension of the padded tensor.
    pub fn physical_axis(&self, axis: i64) -> Result<usize> {
        Ok(normalize_axis(axis, self.rank)? + MAX_RANK - self.rank)
    }

    /// Builds a tensor on `device` from host data and a logical shape.
    pub fn from_host(values: Vec<f32>, shape: &[usize], device: &Device) -> Result<Self> {
        let padded = padded_shape(shape)?;
        let tensor = Tensor::<4>::from_data(TensorData::new(values, padded), device);
        Ok(Self {
            tensor,
            rank: shape.len(),
        })
    }
}

/// Reads a tensor back to the host as `f32` values.
pub fn host_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("cannot read a tensor back from the device: {e:?}")))
}

/// Pads a logical shape with leading ones to rank 4.
pub fn padded_shape(shape: &[usize]) -> Result<[usize; MAX_RANK]> {
    if shape.len() > MAX_RANK {
        return Err(Error::Data(format!(
            "tensor of rank {} (shape {shape:?}) exceeds the supported rank {MAX_RANK}",
            shape.len()
        )));
    }
    let mut out = [1; MAX_RANK];
    out[MAX_RANK - shape.len()..].copy_from_slice(shape);
    Ok(out)
}

/// Resolves a negative ONNX axis against a rank.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(Error::Data(format!(
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
