//! The matrix products of the convolution kernels (one `gemm` call per image, group and block
//! of output rows) and the scratch buffer they share, kept per thread.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::isa::Kernel;
use super::par::gemm_parallelism;
use super::shape::ConvShape;

thread_local! {
    /// The scratch buffer of this thread, grown to the largest convolution seen.
    static COLUMNS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// One group's matrix product within one image's convolution: its sizes and how it may use
/// the threads (shared by the forward kernel and the input gradient).
pub struct GroupProduct {
    /// Output pixels per channel (`oh * ow`).
    pub n: usize,
    /// Input channels per group.
    pub cin_g: usize,
    /// Output channels per group.
    pub cout_g: usize,
    /// The inner dimension: `cin_g * kh * kw`.
    pub k: usize,
    /// Input pixels per channel.
    pub plane: usize,
    /// Threads for the product: few images leave the threads to it.
    pub parallelism: gemm::Parallelism,
}

impl GroupProduct {
    /// The product of `s`'s groups; `inner_parallel` when the images do not fill the threads.
    pub fn of(s: &ConvShape, inner_parallel: bool) -> Self {
        let [oh, ow] = s.checked_output();
        let n = oh * ow;
        let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
        let k = cin_g * s.kernel[0] * s.kernel[1];
        let parallelism = if inner_parallel && cout_g * n * k >= 1 << 21 {
            gemm_parallelism()
        } else {
            gemm::Parallelism::None
        };
        Self {
            n,
            cin_g,
            cout_g,
            k,
            plane: s.input[0] * s.input[1],
            parallelism,
        }
    }
}

/// Runs `f` on this thread's scratch buffer (the im2col columns, the window kernels' planes),
/// grown to the largest size asked for. The buffer is taken out for the call and put back
/// after it: a thread that waits inside `f` for parallel work (an im2col or epilogue spread
/// over the threads, `gemm`'s own threads) may run another image's kernel meanwhile, which
/// then works in a buffer of its own (a borrow held across the call panicked there).
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut buffer = COLUMNS.take();
    let out = f(&mut buffer);
    COLUMNS.set(buffer);
    out
}

/// Runs `f` on this thread's column buffer, `len` values long (grown to the largest seen).
pub fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(|columns| {
        if columns.len() < len {
            columns.resize(len, 0.0);
        }
        f(&mut columns[..len])
    })
}

/// `dst = lhs · rhs` for row-major `dst` (`m × n`) and `rhs` (`k × n`), with `lhs` row-major
/// `m × k`, or stored `k × m` and used transposed (`lhs_transposed`).
pub fn matmul(
    dst: &mut [f32],
    dims: [usize; 3],
    lhs: &[f32],
    lhs_transposed: bool,
    rhs: &[f32],
    parallelism: gemm::Parallelism,
) {
    let (lhs, rhs) = operands(dst.len(), dims, lhs, lhs_transposed, rhs);
    matmul_into(&mut dst[..dims[0] * dims[1]], lhs, rhs, parallelism);
}

/// `dst = lhs · rhs` for a row-major `dst` (`lhs` rows × `rhs` columns), the operands read in
/// place (any strides).
pub fn matmul_into(dst: &mut [f32], lhs: MatRef, rhs: MatRef, parallelism: gemm::Parallelism) {
    let ([m, k], [k2, n]) = (lhs.shape, rhs.shape);
    assert!(
        k == k2 && lhs.fits() && rhs.fits() && m.checked_mul(n) == Some(dst.len()),
        "a {m}x{k} by {k2}x{n} product into {} values",
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the operands fit their slices and dst holds the m × n values (asserted above),
    // a unique borrow that aliases neither.
    unsafe { gemm_into((dst.as_mut_ptr(), n), lhs, rhs, 1.0, false, parallelism) }
}

/// `lhs · rhs` into columns `cols` of the row-major `dst`, rows `row_len` values apart, not
/// yet written (`gemm` does not read its destination here); returns each row's block, written.
/// A product split by columns, so that each block is finished while it is in the cache.
pub fn matmul_columns_into<'d>(
    dst: &'d mut [MaybeUninit<f32>],
    row_len: usize,
    cols: Range<usize>,
    lhs: MatRef,
    rhs: MatRef,
    parallelism: gemm::Parallelism,
) -> Vec<&'d mut [f32]> {
    let ([m, k], [k2, n]) = (lhs.shape, rhs.shape);
    assert!(
        k == k2
            && lhs.fits()
            && rhs.fits()
            && cols.len() == n
            && cols.end <= row_len
            && m.checked_mul(row_len).is_some_and(|v| dst.len() >= v),
        "a {m}x{k} by {k2}x{n} product into columns {cols:?} of {row_len} of {} values",
        dst.len()
    );
    if m == 0 || n == 0 {
        return Vec::new();
    }
    // SAFETY: the operands fit their slices, and the block's m rows of n values, `row_len`
    // apart from `cols.start`, lie in dst (all asserted above), a unique borrow that aliases
    // neither; gemm only writes them (not accumulating).
    unsafe {
        let ptr = dst.as_mut_ptr().cast::<f32>().add(cols.start);
        gemm_into((ptr, row_len), lhs, rhs, 1.0, false, parallelism);
    }
    dst.chunks_exact_mut(row_len)
        .take(m)
        .map(|row| {
            let block = &mut row[cols.clone()];
            // SAFETY: the product just wrote every value of this row's block.
            unsafe { &mut *(std::ptr::from_mut(block) as *mut [f32]) }
        })
        .collect()
}

/// [`matmul`]'s operands as matrices, once they are checked to fit a product of `dims` into
/// `dst_len` values.
fn operands<'a>(
    dst_len: usize,
    [m, n, k]: [usize; 3],
    lhs: &'a [f32],
    lhs_transposed: bool,
    rhs: &'a [f32],
) -> (MatRef<'a>, MatRef<'a>) {
    let fits =
        |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|v| len >= v);
    assert!(
        fits(dst_len, m, n) && fits(lhs.len(), m, k) && fits(rhs.len(), k, n),
        "a {m}x{k} by {k}x{n} product into {dst_len} values got {} and {} values",
        lhs.len(),
        rhs.len()
    );
    let lhs = if lhs_transposed {
        MatRef::row_major(lhs, [k, m]).t()
    } else {
        MatRef::row_major(lhs, [m, k])
    };
    (lhs, MatRef::row_major(rhs, [k, n]))
}

/// `dst = alpha · lhs · rhs`, plus `dst`'s own values with `accumulate`, into the row-major
/// `dst` (`lhs` rows × `rhs` columns, rows `dst_row` values apart): the one `gemm` call of the
/// products here.
///
/// # Safety
/// Every element `lhs` and `rhs` address lies in their slices, `dst` may be written (and, with
/// `accumulate`, read) for `lhs` rows × `rhs` columns values `dst_row` apart, and it aliases
/// neither operand.
unsafe fn gemm_into(
    (dst, dst_row): (*mut f32, usize),
    lhs: MatRef,
    rhs: MatRef,
    alpha: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let ([m, k], [_, n]) = (lhs.shape, rhs.shape);
    let s = |v: usize| v as isize;
    Kernel::Gemm.enter();
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            s(dst_row),
            accumulate,
            lhs.data.as_ptr(),
            s(lhs.strides[1]),
            s(lhs.strides[0]),
            rhs.data.as_ptr(),
            s(rhs.strides[1]),
            s(rhs.strides[0]),
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A matrix read in place from a slice: element `(i, j)` at `i * strides[0] + j * strides[1]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The values (at least as many as the shape and strides address).
    pub data: &'a [f32],
    /// Rows and columns.
    pub shape: [usize; 2],
    /// The steps from one row and from one column to the next.
    pub strides: [usize; 2],
}

impl<'a> MatRef<'a> {
    /// `data` as a row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], [rows, cols]: [usize; 2]) -> Self {
        MatRef {
            data,
            shape: [rows, cols],
            strides: [cols, 1],
        }
    }

    /// The transpose, read from the same values.
    pub fn t(self) -> Self {
        let ([r, c], [sr, sc]) = (self.shape, self.strides);
        MatRef {
            shape: [c, r],
            strides: [sc, sr],
            ..self
        }
    }

    /// Whether every element it addresses lies in `data`.
    pub fn fits(&self) -> bool {
        let [r, c] = self.shape;
        if r == 0 || c == 0 {
            return true;
        }
        let last = (r - 1)
            .checked_mul(self.strides[0])
            .zip((c - 1).checked_mul(self.strides[1]))
            .and_then(|(a, b)| a.checked_add(b));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// `dst = alpha · lhs · rhs`, plus `dst`'s own values with `accumulate`, for a row-major `dst`
/// (`lhs` rows × `rhs` columns) and operands of any strides, read in place (`gemm` packs them;
/// its microkernels run along `dst`'s rows, so a fully connected layer's 10 images by 1000
/// classes fills them where Burn's product of the transposed weights did not).
pub fn product(
    dst: &mut [f32],
    lhs: MatRef,
    rhs: MatRef,
    alpha: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let ([m, k], [k2, n]) = (lhs.shape, rhs.shape);
    assert!(
        k == k2 && lhs.fits() && rhs.fits() && m.checked_mul(n).is_some_and(|v| dst.len() >= v),
        "a {m}x{k} by {k2}x{n} product into {} values got operands {:?} and {:?} that do not fit",
        dst.len(),
        (lhs.shape, lhs.strides, lhs.data.len()),
        (rhs.shape, rhs.strides, rhs.data.len()),
    );
    // SAFETY: every element the strides address lies in its slice (asserted above: the last
    // one of each operand is inside, and dst holds the m x n row-major values); dst, a unique
    // borrow, does not alias lhs or rhs.
    unsafe {
        gemm_into(
            (dst.as_mut_ptr(), n),
            lhs,
            rhs,
            alpha,
            accumulate,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::values;

    /// `product` equals the definition for more rows than columns and fewer, operands stored
    /// transposed, a scale and accumulation.
    #[test]
    fn products_of_any_strides_match_the_definition() {
        for (i, &[m, k, n]) in [[10, 37, 100], [100, 37, 10], [7, 1, 7], [3, 64, 129]]
            .iter()
            .enumerate()
        {
            let a = values(m * k, 700 + i as u32);
            let b = values(k * n, 710 + i as u32);
            let start = values(m * n, 720 + i as u32);
            for (a_t, b_t, accumulate) in [
                (false, false, false),
                (true, true, true),
                (false, true, true),
            ] {
                let lhs = if a_t {
                    // Stored k x m, read transposed.
                    let mut s = vec![0.0; m * k];
                    (0..m).for_each(|r| (0..k).for_each(|c| s[c * m + r] = a[r * k + c]));
                    s
                } else {
                    a.clone()
                };
                let rhs = if b_t {
                    let mut s = vec![0.0; k * n];
                    (0..k).for_each(|r| (0..n).for_each(|c| s[c * k + r] = b[r * n + c]));
                    s
                } else {
                    b.clone()
                };
                let lhs_ref = if a_t {
                    MatRef::row_major(&lhs, [k, m]).t()
                } else {
                    MatRef::row_major(&lhs, [m, k])
                };
                let rhs_ref = if b_t {
                    MatRef::row_major(&rhs, [n, k]).t()
                } else {
                    MatRef::row_major(&rhs, [k, n])
                };
                let mut dst = start.clone();
                product(
                    &mut dst,
                    lhs_ref,
                    rhs_ref,
                    0.5,
                    accumulate,
                    gemm::Parallelism::None,
                );
                for r in 0..m {
                    for c in 0..n {
                        let dot: f32 = (0..k).map(|j| a[r * k + j] * b[j * n + c]).sum();
                        let want = 0.5 * dot + if accumulate { start[r * n + c] } else { 0.0 };
                        let got = dst[r * n + c];
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "case {i} {a_t} {b_t} ({r}, {c}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
