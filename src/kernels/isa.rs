//! Which instruction set the CPU kernels run with, picked at run time so that one binary serves
//! every x86-64: AVX-512 where the CPU has it, else AVX2 with FMA, else the portable build (the
//! only path on other architectures, where the compiler's auto-vectorisation targets the
//! build's baseline: NEON on aarch64, SIMD128 in the browser). The matrix products go through
//! `gemm`, which picks its own microkernels the same way (its AVX-512 ones with the `avx512`
//! feature of this crate, on by default).
//!
//! A front end may cap igcam's own kernels ([`set_cap`]; the CLI's `IGCAM_CPU_ISA`, like
//! PyTorch's `ATEN_CPU_CAPABILITY`), to compare paths on one machine; a cap never raises the ISA
//! above what the CPU has.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set a kernel is compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The build's baseline (SSE2 on x86-64, NEON on aarch64, SIMD128 on wasm32).
    Portable,
    /// AVX2 with FMA: 8 lanes of f32.
    Avx2,
    /// AVX-512 (F) with FMA: 16 lanes of f32.
    Avx512,
}

impl Isa {
    /// Every ISA, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name `IGCAM_CPU_ISA` and the profiles use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The ISA called `name`, if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this CPU runs code compiled for `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The ISAs this CPU runs, narrowest first (every path a test should compare).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.available()).collect()
    }

    /// The widest ISA this CPU has (detected once).
    pub fn widest() -> Isa {
        static WIDEST: OnceLock<Isa> = OnceLock::new();
        *WIDEST.get_or_init(|| Isa::supported().pop().unwrap_or(Isa::Portable))
    }

    /// The ISA igcam's own kernels run with: the widest this CPU has, under the [`set_cap`].
    pub fn active() -> Isa {
        Isa::widest().min(Isa::ALL[usize::from(CAP.load(Ordering::Relaxed))])
    }
}

/// The widest ISA igcam's own kernels may use (an index into [`Isa::ALL`]).
static CAP: AtomicU8 = AtomicU8::new(Isa::Avx512 as u8);

/// Caps igcam's own kernels at `cap` from now on (`gemm` picks its microkernels itself).
pub fn set_cap(cap: Isa) {
    CAP.store(cap as u8, Ordering::Relaxed);
}

/// Whether the portable build has a fused multiply-add instruction (`f32::mul_add` is a slow
/// library call where it has not: x86-64's baseline, wasm32).
pub const PORTABLE_FMA: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// Defines `$name(isa, args...)`, which runs the `#[inline(always)]` function `$body(args...)`
/// compiled for `isa`: for AVX-512 and for AVX2 (x86-64 only) through `#[target_feature]`
/// copies, the portable build otherwise. Panics if the CPU lacks `isa` ([`Isa::available`]),
/// which is what makes the copies' calls sound. Written `=> $body::<FMA>`, the body takes a
/// `const FMA: bool`: true in the copies (both ISAs have FMA), [`PORTABLE_FMA`] otherwise.
macro_rules! isa_dispatch {
    ($(#[$meta:meta])* fn $name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident::<FMA>) => {
        $crate::kernels::isa::isa_dispatch!(@copies $(#[$meta])* fn $name $(<$lt>)? ($($arg: $ty),*) [$($ret)?]
            [$body::<true>] [$body::<{ $crate::kernels::isa::PORTABLE_FMA }>]);
    };
    ($(#[$meta:meta])* fn $name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $crate::kernels::isa::isa_dispatch!(@copies $(#[$meta])* fn $name $(<$lt>)? ($($arg: $ty),*) [$($ret)?]
            [$body] [$body]);
    };
    (@copies $(#[$meta:meta])* fn $name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),*) [$($ret:ty)?]
        [$($wide:tt)+] [$($portable:tt)+]) => {
        $(#[$meta])*
        fn $name $(<$lt>)? (isa: $crate::kernels::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,fma")]
            unsafe fn avx512 $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? {
                $($wide)+($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2 $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? {
                $($wide)+($($arg),*)
            }
            assert!(isa.available(), "this CPU cannot run {isa:?} code");
            match isa {
                // SAFETY: the CPU has AVX-512F and FMA (`Isa::available`, asserted above).
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::isa::Isa::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: the CPU has AVX2 and FMA (`Isa::available`, asserted above).
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::isa::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => $($portable)+($($arg),*),
            }
        }
    };
}
pub(crate) use isa_dispatch;

/// The kernels whose ISA a profile reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Matrix products (`gemm`): convolutions, their input gradients, Winograd's products.
    Gemm,
    /// Depthwise convolution and max pooling over phase planes.
    Window,
    /// The convolution and pooling input gradients' tap sums.
    GradTaps,
    /// The bias, residual and activation applied to a convolution's output.
    Epilogue,
    /// Winograd's input and output tile transforms.
    Transforms,
    /// `exp` and `erf` over tensors, and the softmax of rows.
    Transcendental,
    /// Layer normalisation of rows, forward and backward.
    Normalize,
    /// CAM maps resized to the input and scaled.
    Maps,
}

impl Kernel {
    const ALL: [Kernel; 8] = [
        Kernel::Gemm,
        Kernel::Window,
        Kernel::GradTaps,
        Kernel::Epilogue,
        Kernel::Transforms,
        Kernel::Transcendental,
        Kernel::Normalize,
        Kernel::Maps,
    ];

    /// What the kernel computes, for a profile.
    pub fn label(self) -> &'static str {
        match self {
            Kernel::Gemm => "matrix products (gemm)",
            Kernel::Window => "depthwise convolution and pooling",
            Kernel::GradTaps => "convolution and pooling input gradients",
            Kernel::Epilogue => "convolution epilogue (bias, residual, activation)",
            Kernel::Transforms => "Winograd tile transforms",
            Kernel::Transcendental => "exp, erf and softmax",
            Kernel::Normalize => "layer normalisation",
            Kernel::Maps => "CAM maps at the input's size (resize, scaling)",
        }
    }

    /// The ISA this kernel runs with on this CPU.
    pub fn isa(self) -> Isa {
        match self {
            Kernel::Gemm => gemm_isa(),
            Kernel::Window
            | Kernel::GradTaps
            | Kernel::Epilogue
            | Kernel::Transforms
            | Kernel::Transcendental
            | Kernel::Normalize
            | Kernel::Maps => Isa::active(),
        }
    }

    /// Records that the kernel ran and returns its ISA.
    pub fn enter(self) -> Isa {
        let isa = self.isa();
        RAN[self as usize].store(isa as u8 + 1, Ordering::Relaxed);
        isa
    }
}

/// Per kernel: 0 when it has not run, else its ISA + 1.
static RAN: [AtomicU8; Kernel::ALL.len()] = [const { AtomicU8::new(0) }; Kernel::ALL.len()];

/// The kernels that have run in this process, with the ISA each ran with.
pub fn kernels_run() -> Vec<(&'static str, Isa)> {
    Kernel::ALL
        .into_iter()
        .filter_map(|k| {
            let v = RAN[k as usize].load(Ordering::Relaxed);
            (v > 0).then(|| (k.label(), Isa::ALL[usize::from(v - 1)]))
        })
        .collect()
}

/// The microkernels `gemm` picks: its AVX-512 ones need this crate's `avx512` feature (its
/// `x86-v4`); [`set_cap`] does not reach them.
fn gemm_isa() -> Isa {
    let compiled = if cfg!(feature = "avx512") {
        Isa::Avx512
    } else {
        Isa::Avx2
    };
    Isa::widest().min(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_by_width() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("avx"), None);
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn the_active_isa_is_the_widest_this_cpu_has() {
        assert!(Isa::supported().contains(&Isa::Portable));
        assert_eq!(Isa::active(), Isa::widest());
        assert!(Isa::active().available());
    }

    #[test]
    fn a_kernel_that_ran_is_reported_with_its_isa() {
        let isa = Kernel::Window.enter();
        assert!(kernels_run().contains(&(Kernel::Window.label(), isa)));
    }
}
