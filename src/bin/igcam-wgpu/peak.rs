//! The CPU's arithmetic peak, so that a profile can say how close to it the convolutions run:
//! threads × clock × 2 FMA units × f32 lanes of the matrix products' ISA × 2 FLOP per FMA. The
//! clock is `/proc/cpuinfo`'s highest `cpu MHz` (a virtual machine reports its nominal clock;
//! turbo can go above it, so a share over 100 % means the assumption is low). Two FMA units per
//! core is what AVX2 cores since Haswell and Zen 2 and most AVX-512 cores have; set
//! `IGCAM_PEAK_GFLOPS` where it is known better.

use igcam::isa::{Isa, Kernel};

/// The peak in GFLOP/s and how it was computed, or `None` when the clock is unknown.
pub fn peak_gflops() -> Option<(f64, String)> {
    if let Some(v) = std::env::var("IGCAM_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
    {
        return Some((v, "IGCAM_PEAK_GFLOPS".into()));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz = cpuinfo
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
    let isa = Kernel::Gemm.isa();
    let lanes = match isa {
        Isa::Avx512 => 16.0,
        Isa::Avx2 => 8.0,
        Isa::Portable => 4.0,
    };
    let threads = rayon::current_num_threads() as f64;
    let gflops = threads * mhz / 1000.0 * 2.0 * lanes * 2.0;
    let how = format!(
        "{threads} threads × {:.2} GHz × 2 FMA units × {lanes} lanes ({}) × 2 FLOP",
        mhz / 1000.0,
        isa.name()
    );
    Some((gflops, how))
}
