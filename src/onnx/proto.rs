//! Reading ONNX protobuf messages (parsed by `onnx-ir`'s bindings): node attributes and
//! initialiser tensors.

use burn::tensor::Device;
use ndarray::{ArrayD, IxDyn};
use onnx_ir::{AttributeProto, NodeProto, TensorProto};

use super::value::{FloatValue, Value};
use crate::error::TensorDataError;

/// ONNX `TensorProto.DataType` codes this runtime reads.
mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;
}

/// Typed access to a node's attributes.
pub struct Attrs<'a> {
    attrs: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    /// Attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Self {
        Self {
            attrs: &node.attribute,
        }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// An integer attribute, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    /// A float-list attribute, if present.
    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
    }

    /// A float attribute, or `default` when absent.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
}

/// Host copy of a tensor's contents.
#[derive(Clone, Debug)]
pub enum HostTensor {
    /// Float data (float and double tensors).
    Float(Vec<f32>, Vec<usize>),
    /// Integer data (int8..int64 and bool tensors).
    Int(ArrayD<i64>),
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N)
        .map(|c| c.try_into().expect("exact chunk"))
}

/// Decodes a `TensorProto` into host memory.
pub fn host_tensor(t: &TensorProto) -> Result<HostTensor, TensorDataError> {
    if !t.external_data.is_empty() {
        return Err(TensorDataError(format!(
            "tensor `{}` keeps its data in an external file, which igcam reads only for initialisers; re-export with the weights inside (`torch.onnx.export(..., external_data=False)`)",
            t.name
        )));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let count = crate::budget::elements(&dims).ok_or_else(|| {
        TensorDataError(format!(
            "tensor `{}` has shape {dims:?}, whose size overflows",
            t.name
        ))
    })?;
    let raw: &[u8] = &t.raw_data;
    let floats: Option<Vec<f32>> = match t.data_type {
        dtype::FLOAT if !raw.is_empty() => {
            Some(le_chunks::<4>(raw).map(f32::from_le_bytes).collect())
        }
        dtype::FLOAT => Some(t.float_data.clone()),
        dtype::DOUBLE if !raw.is_empty() => Some(
            le_chunks::<8>(raw)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
        ),
        dtype::DOUBLE => Some(t.double_data.iter().map(|&v| v as f32).collect()),
        _ => None,
    };
    if let Some(values) = floats {
        if values.len() != count {
            return Err(TensorDataError(format!(
                "tensor `{}` holds {} values for shape {dims:?}",
                t.name,
                values.len()
            )));
        }
        return Ok(HostTensor::Float(values, dims));
    }
    let ints: Vec<i64> = match t.data_type {
        dtype::INT64 if !raw.is_empty() => le_chunks::<8>(raw).map(i64::from_le_bytes).collect(),
        dtype::INT64 => t.int64_data.clone(),
        dtype::INT32 if !raw.is_empty() => le_chunks::<4>(raw)
            .map(|b| i32::from_le_bytes(b) as i64)
            .collect(),
        dtype::INT8 if !raw.is_empty() => raw.iter().map(|&b| b as i8 as i64).collect(),
        dtype::UINT8 | dtype::BOOL if !raw.is_empty() => raw.iter().map(|&b| b as i64).collect(),
        dtype::INT32 | dtype::INT8 | dtype::UINT8 | dtype::BOOL => {
            t.int32_data.iter().map(|&v| v as i64).collect()
        }
        other => {
            let (name, fix) = match other {
                10 => (
                    "float16",
                    "; export the model in float32 (`model.float()` before `torch.onnx.export`)",
                ),
                16 => (
                    "bfloat16",
                    "; export the model in float32 (`model.float()` before `torch.onnx.export`)",
                ),
                8 => ("string", ""),
                _ => ("", ""),
            };
            let name = if name.is_empty() {
                String::new()
            } else {
                format!(" ({name})")
            };
            return Err(TensorDataError(format!(
                "tensor `{}` has ONNX data type {other}{name}, which igcam does not read{fix}",
                t.name
            )));
        }
    };
    let array = ArrayD::from_shape_vec(IxDyn(&dims), ints).map_err(|_| {
        TensorDataError(format!(
            "tensor `{}` holds the wrong number of values for shape {dims:?}",
            t.name
        ))
    })?;
    Ok(HostTensor::Int(array))
}

impl HostTensor {
    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            HostTensor::Float(_, dims) => dims.clone(),
            HostTensor::Int(a) => a.shape().to_vec(),
        }
    }

    /// The values as `f32`.
    pub fn floats(&self) -> Vec<f32> {
        match self {
            HostTensor::Float(v, _) => v.clone(),
            HostTensor::Int(a) => a.iter().map(|&v| v as f32).collect(),
        }
    }

    /// Moves the tensor into a graph value (floats go to `device`).
    pub fn into_value(self, device: &Device) -> Result<Value, TensorDataError> {
        match self {
            HostTensor::Float(values, dims) => FloatValue::from_host(values, &dims, device)
                .map(Value::Float)
                .map_err(|e| TensorDataError(e.to_string())),
            HostTensor::Int(a) => Ok(Value::Int(a)),
        }
    }
}
