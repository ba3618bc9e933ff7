//! The allocator of igcam's binaries (the CLI and the Python extension): mimalloc, told to keep
//! the memory it frees.
//!
//! A backbone pass allocates and frees the same few large tensor buffers op after op (ResNet-50
//! at batch 10: tens of MB each). By default mimalloc (v3) returns freed memory to the OS after
//! a delay (its purge delay, 1 s; 10 ms in v2), so later ops' outputs were faulted in and
//! zeroed by the kernel again, page by page: about 31,000 page faults and 5–11 % of a ResNet-50
//! IG-CAM run's CPU time (`perf record -e cpu-clock`, `clear_page_erms`; a purge delay of 1 s
//! set explicitly gave the same). Kept, the memory is reused: about 1,300 faults, and the
//! process's peak grows by about 5 % (freed blocks are not handed back).

use std::ffi::{c_int, c_long};

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, the same in v2 and v3).
const PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    /// mimalloc's option setter (linked in with the allocator itself).
    fn mi_option_set(option: c_int, value: c_long);
}

/// Keeps freed memory in the process for reuse (mimalloc's purge delay −1, "never"), unless
/// the user set it themselves (`MIMALLOC_PURGE_DELAY`, or its older name
/// `MIMALLOC_RESET_DELAY`). Call it before the work starts: first thing in `main`, or when the
/// Python module loads. (`mi_option_set_default` would not do: mimalloc reads every option
/// when the process starts, so a default set later is ignored.)
pub fn retain_freed_memory() {
    let user_set = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !user_set {
        // SAFETY: a plain setter of a process-wide integer option; any value is valid.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}
