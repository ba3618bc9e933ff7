//! How much arithmetic the forward convolution kernels have done, for profiles: achieved
//! GFLOP/s is this count over the time they took. One relaxed atomic add per kernel call.

use std::sync::atomic::{AtomicU64, Ordering};

use super::shape::ConvShape;

static MULTIPLY_ADDS: AtomicU64 = AtomicU64::new(0);

/// Counts the multiply-adds of `batch` images of the convolution `s` (the direct method's
/// count, whatever algorithm computes it: Winograd's saving shows as a higher rate).
pub fn count_convolution(s: &ConvShape, batch: usize) {
    let [oh, ow] = s.checked_output();
    let per_output = (s.cin / s.groups) * s.kernel[0] * s.kernel[1];
    let n = (batch * s.cout * oh * ow) as u64 * per_output as u64;
    MULTIPLY_ADDS.fetch_add(n, Ordering::Relaxed);
}

/// The multiply-adds counted since the last call, and a reset to zero.
pub fn take_multiply_adds() -> u64 {
    MULTIPLY_ADDS.swap(0, Ordering::Relaxed)
}
