//! The allocator of igcam's binaries (the CLI and the Python extension): mimalloc, told to keep
//! the memory it frees.
//!
//! A backbone pass allocates and frees the same few large tensor buffers op after op (ResNet-50
//! at batch 10: tens of MB each). By default mimalloc returns freed memory to the OS after a
//! 10 ms delay, so the next op's output is faulted in and zeroed by the kernel again, page by
//! page: about 31,000 page faults and 5–11 % of a ResNet-50 IG-CAM run's CPU time
//! (`perf record -e cpu-clock`, `clear_page_erms`). Kept, the memory is reused: about 1,300
//! faults, and the process's peak grows by about 5 % (freed blocks are not handed back).

use std::ffi::{c_int, c_long};

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, the same in v2 and v3).
const PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    /// mimalloc's option setter (linked in with the allocator itself).
    fn mi_option_set(option: c_int, value: c_long);
}

/// Keeps freed memory in the process for reuse (mimalloc's purge delay −1, "never"), unless
/// the user set `MIMALLOC_PURGE_DELAY` themselves. Call it first thing in `main`.
pub fn retain_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of a process-wide integer option; any value is valid.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}
