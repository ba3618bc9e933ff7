//! One explainer shared by every Python thread. Calls take turns on it; the lock is taken with
//! the GIL released (inside `py.detach`), so a thread waiting for it never holds the GIL that
//! the running call needs for its progress reports. A call from inside a progress callback
//! (the thread that holds the lock) is refused instead of waiting for itself, and a panic in
//! the library becomes `igcam.ModelError` and leaves the explainer usable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::PyResult;

use crate::errors::{input_error, model_error};

/// A number for the calling thread, never 0.
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    NUMBER.with(|n| *n)
}

/// A value behind a lock that refuses re-entry and survives panics.
pub struct Shared<T> {
    value: Mutex<T>,
    /// The thread holding the lock (0: none).
    holder: AtomicU64,
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            holder: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the value once this thread's turn comes. Call it with the GIL released.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> PyResult<R>) -> PyResult<R> {
        let me = thread_number();
        if self.holder.load(Ordering::SeqCst) == me {
            return Err(input_error(
                "the explainer is running this thread's request: call it again after `explain` returns, not from its progress callback",
            ));
        }
        let mut value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        self.holder.store(me, Ordering::SeqCst);
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut value)));
        self.holder.store(0, Ordering::SeqCst);
        result.unwrap_or_else(|panic| Err(model_error(panic_text(panic.as_ref()))))
    }
}

/// A caught panic as `internal error: ... (please report it)`.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    igcam::Error::Internal(text).to_string()
}
