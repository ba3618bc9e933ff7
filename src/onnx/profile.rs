//! Where the time goes: per-operator and per-phase wall time of a model's runs, for
//! `igcam-wgpu bench --profile`. The core never reads a clock itself (it also runs in a browser):
//! the caller installs one with [`OnnxModel::start_profile`](super::OnnxModel::start_profile).
//! On a device that runs asynchronously (wgpu), every timed step ends with a device sync, so the
//! figures are real but the run is slower than an unprofiled one.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Milliseconds since an arbitrary origin.
pub type Clock = fn() -> f64;

/// Time spent under one name.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProfileEntry {
    /// How many times it ran.
    pub calls: u64,
    /// Total wall time in milliseconds.
    pub ms: f64,
}

/// A finished profile: operators by ONNX op type, and the phases of an explanation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Time per ONNX op type (`Conv`, `Relu`, ...), summed over every run.
    pub ops: BTreeMap<String, ProfileEntry>,
    /// Time per phase (`forward to layer`, `head backward`, `read back`, ...).
    pub phases: BTreeMap<String, ProfileEntry>,
    /// Time per node (`op type` + node name; a fused group under its first node's name).
    pub nodes: BTreeMap<String, ProfileEntry>,
}

impl Profile {
    /// The entries of `map`, largest total first.
    pub fn sorted(map: &BTreeMap<String, ProfileEntry>) -> Vec<(&str, &ProfileEntry)> {
        let mut v: Vec<_> = map.iter().map(|(k, e)| (k.as_str(), e)).collect();
        v.sort_by(|a, b| b.1.ms.total_cmp(&a.1.ms));
        v
    }
}

/// The profiler a model carries: off until a clock is installed. Shared by the threads that
/// run reverse passes side by side (their times add up, as CPU time does).
#[derive(Default)]
pub(crate) struct Profiler {
    clock: Mutex<Option<Clock>>,
    profile: Mutex<Profile>,
}

/// `m` locked (a panic while it was held leaves nothing half-written that matters here).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Profiler {
    /// Starts recording with `clock`, dropping anything recorded before.
    pub fn start(&self, clock: Clock) {
        *lock(&self.clock) = Some(clock);
        *lock(&self.profile) = Profile::default();
    }

    /// Stops recording and returns what was recorded.
    pub fn finish(&self) -> Profile {
        *lock(&self.clock) = None;
        std::mem::take(&mut *lock(&self.profile))
    }

    /// The clock's reading when recording, `None` otherwise.
    pub fn now(&self) -> Option<f64> {
        lock(&self.clock).map(|c| c())
    }

    /// Adds the time since `start` (a [`Profiler::now`] reading) to op type `op` and to the
    /// node `node`.
    pub fn add_op(&self, op: &str, node: &str, start: Option<f64>) {
        let (Some(start), Some(now)) = (start, self.now()) else {
            return;
        };
        let mut p = lock(&self.profile);
        let p = &mut *p;
        for (map, key) in [
            (&mut p.ops, op.to_string()),
            (&mut p.nodes, format!("{op} {node}")),
        ] {
            let e = map.entry(key).or_default();
            e.calls += 1;
            e.ms += now - start;
        }
    }

    /// Adds the time since `start` to phase `phase`.
    pub fn add_phase(&self, phase: &str, start: Option<f64>) {
        let (Some(start), Some(now)) = (start, self.now()) else {
            return;
        };
        let mut p = lock(&self.profile);
        let e = p.phases.entry(phase.to_string()).or_default();
        e.calls += 1;
        e.ms += now - start;
    }
}
