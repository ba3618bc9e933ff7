//! The clock the binary hands to the core (which never reads one itself).

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call.
pub fn now_ms() -> f64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}
