//! The matrix products of the convolution kernels (one `gemm` call per image and group) and
//! the scratch buffer they share, kept per thread.

use std::cell::RefCell;

use super::isa::Kernel;
use super::par::gemm_parallelism;
use super::shape::ConvShape;

thread_local! {
    /// The scratch buffer of this thread, grown to the largest convolution seen.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

/// Runs `f` on this thread's scratch buffer (the im2col columns, the window kernel's phase
/// planes), grown to the largest size asked for. The kernels that use it never nest.
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    COLUMNS.with(|cell| f(&mut cell.borrow_mut()))
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
    [m, n, k]: [usize; 3],
    lhs: &[f32],
    lhs_transposed: bool,
    rhs: &[f32],
    parallelism: gemm::Parallelism,
) {
    let fits =
        |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|v| len >= v);
    assert!(
        fits(dst.len(), m, n) && fits(lhs.len(), m, k) && fits(rhs.len(), k, n),
        "a {m}x{k} by {k}x{n} product into {} values got {} and {} values",
        dst.len(),
        lhs.len(),
        rhs.len()
    );
    Kernel::Gemm.enter();
    // Row-major m x k: column stride 1, row stride k; transposed storage k x m: the reverse.
    let (lhs_cs, lhs_rs) = if lhs_transposed { (m, 1) } else { (1, k) };
    // SAFETY: the three operands hold at least the values the strides address (checked just
    // above), and dst, a unique borrow, does not alias lhs or rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
