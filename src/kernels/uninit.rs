//! Output buffers the kernels write completely without zeroing them first: zeroing a fresh
//! buffer for a large convolution's output cost a quarter of EfficientNet-Lite0's run (the
//! zeroing pass, and the kernel clearing the fresh pages it touched). A kernel writes its part
//! through `MaybeUninit` (initialising writes only: `write_copy_of_slice`,
//! [`matmul_columns_into`](super::matmul::matmul_columns_into)) and hands back a [`Written`] receipt for the
//! initialised `&mut [f32]` those return; the buffer becomes a `Vec<f32>` only when each
//! part's receipts cover it exactly.

use std::mem::MaybeUninit;

use super::par::par_chunks;

/// A receipt for consecutive values that were written: taken from an initialised `&mut [f32]`.
#[derive(Debug)]
pub struct Written {
    /// Address of the first value.
    start: usize,
    /// Values.
    len: usize,
}

impl Written {
    /// The receipt for `values` (a `&mut [f32]` is initialised).
    pub fn of(values: &mut [f32]) -> Self {
        Written {
            start: values.as_ptr() as usize,
            len: values.len(),
        }
    }

    /// The receipt for all of `part`, whose values were written through a raw pointer (a
    /// product split into column blocks, [`matmul_columns_into`](super::matmul::matmul_columns_into)).
    ///
    /// # Safety
    /// Every value of `part` is initialised.
    pub unsafe fn assume_all(part: &mut [MaybeUninit<f32>]) -> Self {
        Written {
            start: part.as_ptr() as usize,
            len: part.len(),
        }
    }

    /// No values yet, at the start of `part`: the receipt to extend with [`Written::and`].
    pub fn nothing_of(part: &[MaybeUninit<f32>]) -> Self {
        Written {
            start: part.as_ptr() as usize,
            len: 0,
        }
    }

    /// This receipt and `next`'s, which must cover the values right after this one's.
    pub fn and(self, next: Written) -> Self {
        let end = self.start + self.len * size_of::<f32>();
        assert_eq!(next.start, end, "written values that do not follow on");
        Written {
            start: self.start,
            len: self.len + next.len,
        }
    }

    /// Whether it covers exactly `part`.
    fn covers(&self, part: &[MaybeUninit<f32>]) -> bool {
        self.start == part.as_ptr() as usize && self.len == part.len()
    }
}

/// A buffer of `parts × part` values whose part `i` is written by `write(i, part)` (in
/// parallel), which returns the receipt for the whole part. Panics if a receipt does not
/// cover its part exactly.
pub fn written_in_parts(
    parts: usize,
    part: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) -> Written + Sync,
) -> Vec<f32> {
    let len = parts
        .checked_mul(part)
        .expect("an output too large to address");
    written_in_chunks(len, part, write)
}

/// A buffer of `len` values written in chunks of `chunk` (the last one shorter where `chunk`
/// does not divide `len`), as [`written_in_parts`] writes its parts.
pub fn written_in_chunks(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) -> Written + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    par_chunks(&mut out.spare_capacity_mut()[..len], chunk, |i, p| {
        let receipt = write(i, p);
        assert!(
            receipt.covers(p),
            "a kernel left part of its output unwritten"
        );
    });
    // SAFETY: every chunk was covered by its receipt (asserted): a receipt comes from a `&mut
    // [f32]` over those values, and safe code gets one over values of this buffer only from
    // initialising writes. The chunks tile the first `len` values.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_that_cover_every_part_give_the_written_values() {
        let out = written_in_parts(3, 4, |i, part| {
            let (a, b) = part.split_at_mut(1);
            let first = Written::of(a.write_copy_of_slice(&[i as f32]));
            first.and(Written::of(b.write_copy_of_slice(&[1.0, 2.0, 3.0])))
        });
        assert_eq!(out, [0., 1., 2., 3., 1., 1., 2., 3., 2., 1., 2., 3.]);
    }

    #[test]
    fn chunks_that_do_not_divide_the_buffer_leave_a_short_last_one() {
        let out = written_in_chunks(5, 2, |i, part| {
            let values: Vec<f32> = (0..part.len()).map(|j| (10 * i + j) as f32).collect();
            Written::of(part.write_copy_of_slice(&values))
        });
        assert_eq!(out, [0., 1., 10., 11., 20.]);
    }

    #[test]
    #[should_panic(expected = "a kernel left part of its output unwritten")]
    fn a_part_left_short_is_refused() {
        written_in_parts(2, 4, |_, part| {
            Written::of(part[..3].write_copy_of_slice(&[1.0, 2.0, 3.0]))
        });
    }

    #[test]
    #[should_panic(expected = "written values that do not follow on")]
    fn receipts_with_a_gap_are_refused() {
        written_in_parts(1, 4, |_, part| {
            let (a, b) = part.split_at_mut(2);
            let a = Written::of(a[..1].write_copy_of_slice(&[1.0]));
            a.and(Written::of(b.write_copy_of_slice(&[1.0, 2.0])))
        });
    }
}
