//! Zero-copy access to tensors on Burn's CPU backend, for the host kernels: read a tensor's
//! floats in place (even while other parts of the graph still hold it) and wrap a result
//! buffer as a tensor without copying it.

use burn::backend::Flex;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::OpError;

/// Runs `f` on the row-major floats of `t`, a tensor on Burn's plain CPU device, without
/// copying them (unless `t` is a strided view, which is made contiguous first).
pub fn with_floats<const D: usize, R>(
    t: &Tensor<D>,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R, OpError> {
    let flex = t
        .clone()
        .try_into_primitive::<Flex>()
        .map_err(|e| OpError::Backend(format!("not a tensor of the CPU backend: {e:?}")))?;
    let n = flex.layout().num_elements();
    if flex.is_contiguous() && flex.layout().start_offset() == 0 {
        let all = flex.storage::<f32>();
        return Ok(f(&all[..n]));
    }
    let dense = flex.to_contiguous();
    Ok(f(&dense.storage::<f32>()[..n]))
}

/// Wraps `values` (row-major, `shape`) as a tensor on `device` without copying them.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, shape), device)
}
