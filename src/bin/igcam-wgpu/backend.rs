//! Choosing the Burn device: wgpu (any adapter) by default, the CPU on request or as fallback.

#[cfg(feature = "wgpu")]
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::Device;
#[cfg(feature = "wgpu")]
use burn::tensor::{DeviceKind, Tensor};
use clap::ValueEnum;

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Burn's wgpu backend on the best adapter (Vulkan, Metal, DX12); CPU if there is none.
    Wgpu,
    /// Burn's CPU backend (`flex`, the faster of Burn's two CPU backends here).
    Cpu,
    /// Burn's `ndarray` CPU backend (slower; kept for comparisons).
    Ndarray,
}

/// The device that will run, with what to call it.
pub struct Backend {
    /// The Burn device.
    pub device: Device,
    /// `wgpu`, `cpu` or `ndarray`: what actually runs.
    pub name: &'static str,
    /// Adapter or library description.
    pub description: String,
}

/// Opens the wgpu device and runs one tiny op, so a missing adapter shows up here.
#[cfg(feature = "wgpu")]
fn open_wgpu() -> Option<Backend> {
    catch_unwind(AssertUnwindSafe(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        let identity = device.identity();
        let software = identity.as_ref().is_some_and(|i| i.physical.is_none());
        let name = identity.map(|i| i.name).unwrap_or_else(|| "wgpu adapter".into());
        let probe = Tensor::<1>::ones([4], &device).sum().into_data();
        if probe.try_into_vec_as::<f32>().ok()? != vec![4.0] {
            return None;
        }
        if software {
            eprintln!("notice: the wgpu adapter `{name}` is a software rasterizer; `--backend cpu` is usually faster on this machine");
        }
        Some(Backend { device, name: "wgpu", description: name })
    }))
    .ok()
    .flatten()
}

/// Built without the `wgpu` feature: there is no adapter to open.
#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Option<Backend> {
    None
}

fn cpu() -> Backend {
    Backend {
        device: Device::flex(),
        name: "cpu",
        description: "Burn flex (CPU)".into(),
    }
}

/// Opens the requested backend; `wgpu` without a usable adapter falls back to the CPU with a
/// one-line notice on stderr.
pub fn open(choice: BackendChoice) -> Backend {
    match choice {
        BackendChoice::Cpu => cpu(),
        // Deprecated upstream in favour of flex; kept for comparisons.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        BackendChoice::Ndarray => Backend { device: Device::ndarray(), name: "ndarray", description: "Burn ndarray (CPU)".into() },
        #[cfg(not(feature = "ndarray"))]
        BackendChoice::Ndarray => {
            eprintln!("notice: built without the `ndarray` feature; running on flex instead");
            cpu()
        }
        BackendChoice::Wgpu => open_wgpu().unwrap_or_else(|| {
            eprintln!("notice: no usable wgpu adapter (Vulkan, Metal or DX12) was found; running on the CPU instead");
            cpu()
        }),
    }
}
