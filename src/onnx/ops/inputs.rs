//! An operator's inputs: present, of the expected kind (float tensors on the device, integer
//! shape data on the host), and not empty.

use burn::tensor::Tensor;
use ndarray::ArrayD;

use super::operator::OpResult;
use crate::error::OpError;
use crate::onnx::value::{FloatValue, Value};

/// The float tensor at input `i`.
pub fn float_input(inputs: &[Option<Value>], i: usize) -> OpResult<FloatValue> {
    float_of(inputs.get(i).cloned().flatten(), i)
}

/// Takes the float tensor at input `i` out of `inputs` (no reference to it stays behind).
pub fn take_float(inputs: &mut [Option<Value>], i: usize) -> OpResult<FloatValue> {
    float_of(inputs.get_mut(i).and_then(Option::take), i)
}

/// Input `i`, present and a float tensor.
fn float_of(value: Option<Value>, i: usize) -> OpResult<FloatValue> {
    match value {
        Some(Value::Float(f)) if f.tensor.dims().contains(&0) => Err(empty(i, &f.shape())),
        Some(Value::Float(f)) => Ok(f),
        Some(Value::Int(_)) => Err(OpError::Type(format!(
            "input {i} is an integer tensor where a float tensor is expected"
        ))),
        None => Err(missing(i)),
    }
}

/// Input `i` is an empty tensor: Burn's ops do not take them, and no CNN computes one.
pub fn empty(i: usize, shape: &[usize]) -> OpError {
    OpError::Unsupported(format!(
        "input {i} is an empty tensor (shape {shape:?}); empty tensors are not supported"
    ))
}

/// Input `i` is absent.
pub fn missing(i: usize) -> OpError {
    OpError::Graph(format!("input {i} is missing"))
}

/// Takes the 4-D NCHW tensor at input `i` out of `inputs`.
pub fn take_nchw(inputs: &mut [Option<Value>], i: usize) -> OpResult<Tensor<4>> {
    let v = take_float(inputs, i)?;
    if v.rank != 4 {
        return Err(OpError::Shape(format!(
            "input {i} must be 4-D NCHW, got shape {:?}",
            v.shape()
        )));
    }
    Ok(v.tensor)
}

/// The host integer tensor at input `i`.
pub fn int_input(inputs: &[Option<Value>], i: usize) -> OpResult<ArrayD<i64>> {
    match inputs.get(i) {
        Some(Some(Value::Int(a))) => Ok(a.clone()),
        Some(Some(Value::Float(_))) => Err(OpError::Type(format!(
            "input {i} is computed on the device where shape data (integers) is expected"
        ))),
        _ => Err(missing(i)),
    }
}

/// Integer list from an optional input, or `None` when the input is absent.
pub fn optional_ints(inputs: &[Option<Value>], i: usize) -> OpResult<Option<Vec<i64>>> {
    match inputs.get(i) {
        Some(Some(_)) => Ok(Some(int_input(inputs, i)?.iter().copied().collect())),
        _ => Ok(None),
    }
}
