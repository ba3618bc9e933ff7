//! Zero-copy access to tensors on Burn's CPU backend, for the host kernels: read a tensor's
//! floats in place (even while other parts of the graph still hold it) and wrap a result
//! buffer as a tensor without copying it.

use burn::backend::Flex;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::OpError;
use crate::kernels::uninit::{Written, written_in_chunks};

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
    let layout = flex.layout();
    let (n, start) = (layout.num_elements(), layout.start_offset());
    let storage = flex.storage::<f32>();
    // A contiguous view, also at an offset (one part of a split), is read where it is.
    if flex.is_contiguous()
        && let Some(values) = storage.get(start..start + n)
    {
        return Ok(f(values));
    }
    if let Some(rows) = copied_by_rows(storage, start, layout.shape(), layout.strides()) {
        return Ok(f(&rows));
    }
    let dense = flex.to_contiguous();
    Ok(f(&dense.storage::<f32>()[..n]))
}

/// The values of a view whose last axis is unit-strided (a box cut out of a tensor), copied
/// row by row; `None` for another layout. Burn makes a view contiguous value by value, with
/// a bounds check each: a detection's reverse pass cuts boxes out of every activation.
fn copied_by_rows(
    storage: &[f32],
    offset: usize,
    shape: &[usize],
    strides: &[isize],
) -> Option<Vec<f32>> {
    let (&len, outer) = shape.split_last()?;
    if strides.last() != Some(&1) || strides.iter().any(|&s| s < 0) || len == 0 {
        return None;
    }
    let rows: usize = outer.iter().product();
    let mut out = Vec::with_capacity(rows * len);
    let mut index = vec![0usize; outer.len()];
    for _ in 0..rows {
        let start = offset
            + index
                .iter()
                .zip(strides)
                .map(|(&i, &s)| i * s as usize)
                .sum::<usize>();
        out.extend_from_slice(storage.get(start..start + len)?);
        // The next row: the innermost outer axis first.
        for (i, &size) in index.iter_mut().zip(outer).rev() {
            *i += 1;
            if *i < size {
                break;
            }
            *i = 0;
        }
    }
    Some(out)
}

/// Wraps `values` (row-major, `shape`) as a tensor on `device` without copying them.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, shape), device)
}

/// Runs `f` on the values of `t` in place where `t` is a contiguous tensor on Burn's CPU
/// backend that owns its buffer alone (an op's input no other node reads). Returns `t`, and
/// whether `f` ran (else `t` is untouched).
pub fn update_in_place<const D: usize>(
    t: Tensor<D>,
    f: impl FnOnce(&mut [f32]),
) -> (Tensor<D>, bool) {
    let Ok(mut flex) = t.clone().try_into_primitive::<Flex>() else {
        return (t, false);
    };
    // `t` itself holds the buffer too: dropped here, `flex` may be its only owner.
    drop(t);
    let layout = flex.layout();
    let n = layout.num_elements();
    let dense = layout.is_contiguous() && layout.start_offset() == 0;
    let updated = match flex.try_storage_mut::<f32>().filter(|_| dense) {
        Some(values) => {
            f(&mut values[..n]);
            true
        }
        None => false,
    };
    (Tensor::from_primitive::<Flex>(flex), updated)
}

/// Runs `f` on the values of `t`, a tensor on Burn's CPU backend, as they are stored: its
/// buffer from the view's first value, and the view's strides (in values, per axis); `None`
/// for another backend or a view with negative strides.
pub fn with_view<R>(t: &Tensor<4>, f: impl FnOnce(&[f32], [usize; 4]) -> R) -> Option<R> {
    let flex = t.clone().try_into_primitive::<Flex>().ok()?;
    let layout = flex.layout();
    let s = layout.strides();
    let strides = [0, 1, 2, 3].map(|i| s.get(i).and_then(|&v| usize::try_from(v).ok()));
    let strides = [strides[0]?, strides[1]?, strides[2]?, strides[3]?];
    let data = flex.storage::<f32>().get(layout.start_offset()..)?;
    Some(f(data, strides))
}

/// `f` of every value of `t`, a tensor on Burn's CPU backend that is a permuted view of a
/// dense block of its buffer (a `Transpose` Burn left as a view of one part of a `Split`,
/// such as attention's `kᵀ`), computed in
/// the buffer's own order and handed out as the same view of the result; `None` for another
/// layout (a slice, a broadcast), which the caller computes otherwise. Burn's own element-wise
/// ops walk such a view index by index.
pub fn map_in_storage_order(t: &Tensor<4>, f: impl Fn(f32) -> f32 + Sync) -> Option<Tensor<4>> {
    let flex = t.clone().try_into_primitive::<Flex>().ok()?;
    let layout = flex.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let n = layout.num_elements();
    // The axes from the outermost in storage to the innermost; a dense buffer's strides are
    // then the running products of its sizes.
    let mut order = [0, 1, 2, 3];
    order.sort_by_key(|&a| std::cmp::Reverse(strides[a]));
    let mut expected = 1isize;
    for &a in order.iter().rev() {
        if shape[a] > 1 && strides[a] != expected {
            return None;
        }
        expected *= shape[a] as isize;
    }
    if n == 0 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    let storage = flex
        .storage::<f32>()
        .get(layout.start_offset()..)?
        .get(..n)?;
    const CHUNK: usize = 1 << 14;
    let values = written_in_chunks(n, CHUNK, |i, out| {
        let out = out.write_copy_of_slice(&storage[i * CHUNK..][..out.len()]);
        for v in out.iter_mut() {
            *v = f(*v);
        }
        Written::of(out)
    });
    let stored = order.map(|a| shape[a]);
    // Axis `a` of the view is axis `j` of the buffer where `order[j] == a`.
    let axes = [0, 1, 2, 3].map(|a| order.iter().position(|&o| o == a).unwrap_or(a));
    Some(tensor(values, stored, &t.device()).permute(axes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_buffer_is_updated_in_place_only_when_the_tensor_owns_it_alone() {
        let device = Device::flex();
        let t = tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &device);
        let kept = t.clone();
        // Shared with `kept`: handed back untouched.
        let (t, updated) = update_in_place(t, |v| v.fill(0.0));
        assert!(!updated, "a shared buffer");
        assert_eq!(values(kept), [1.0, 2.0, 3.0, 4.0]);
        let (t, updated) = update_in_place(t, |v| v.iter_mut().for_each(|x| *x *= 10.0));
        assert!(updated, "its own buffer");
        assert_eq!(values(t), [10.0, 20.0, 30.0, 40.0]);
        // A transposed view is not updated in place either.
        let view = tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &device).swap_dims(2, 3);
        let (view, updated) = update_in_place(view, |v| v.fill(0.0));
        assert!(!updated);
        assert_eq!(values(view), [1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn a_box_cut_out_of_a_tensor_is_read_row_by_row_as_its_values() {
        let device = Device::flex();
        let t = tensor((0..120).map(|v| v as f32).collect(), [2, 3, 4, 5], &device);
        let cut = t.clone().slice([1..2, 0..3, 1..3, 2..5]);
        let got = with_floats(&cut, <[f32]>::to_vec).unwrap();
        assert_eq!(got.len(), 3 * 2 * 3);
        assert_eq!(&got[..6], [67.0, 68.0, 69.0, 72.0, 73.0, 74.0]);
        assert_eq!(got, values(cut));
        // A transposed view (no unit stride last) goes the general way, to the same values;
        // a contiguous part at an offset is read where it is.
        let view = t.clone().swap_dims(2, 3);
        assert_eq!(with_floats(&view, <[f32]>::to_vec).unwrap(), values(view));
        let part = t.narrow(0, 1, 1);
        assert_eq!(with_floats(&part, <[f32]>::to_vec).unwrap(), values(part));
    }

    #[test]
    fn a_permuted_view_of_a_dense_block_is_mapped_in_place_of_its_values() {
        let device = Device::flex();
        let t = tensor((0..120).map(|v| v as f32).collect(), [2, 3, 4, 5], &device);
        let f = |v: f32| v * 2.0 - 1.0;
        // A transpose, and a transpose of one part of a split (a block at an offset).
        for view in [
            t.clone().permute([0, 2, 1, 3]),
            t.clone().narrow(0, 1, 1).swap_dims(2, 3),
        ] {
            let got = map_in_storage_order(&view, f).expect("a dense block");
            assert_eq!(got.dims(), view.dims());
            let want: Vec<f32> = values(view.clone()).into_iter().map(f).collect();
            assert_eq!(values(got), want);
        }
        // A slice along an inner axis leaves gaps: not a dense block.
        assert!(map_in_storage_order(&t.narrow(2, 1, 2), f).is_none());
    }
}
