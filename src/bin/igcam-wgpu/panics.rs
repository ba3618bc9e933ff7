//! The binary's edge: a panic that escapes the library (a bug) becomes one line, not a
//! backtrace. The library itself reports every bad input as an error.

/// A decoration line such as Burn's `=== Tensor Operation Error ===`.
fn is_banner(line: &str) -> bool {
    line.starts_with("===") && line.ends_with("===")
}

/// Text of a caught panic, on one line.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "internal error".into())
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || is_banner(l)))
        .collect::<Vec<_>>()
        .join(" ")
}
