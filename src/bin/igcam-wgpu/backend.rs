//! Choosing the Burn device. `auto` (the default) takes wgpu on a real GPU adapter (discrete,
//! integrated or virtual) and Burn's CPU backend otherwise: a software adapter (llvmpipe,
//! lavapipe, SwiftShader, WARP) is many times slower than the CPU backend on the same cores.
//! On Linux without a GPU device file, `auto` takes the CPU without looking for adapters.

#[cfg(feature = "wgpu")]
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Result, bail};
use burn::tensor::Device;
#[cfg(feature = "wgpu")]
use burn::tensor::{DeviceKind, Tensor};
use clap::ValueEnum;
use igcam::isa;

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// wgpu on a real GPU adapter; Burn's CPU backend when there is none or only a software one.
    Auto,
    /// Burn's wgpu backend on the best adapter, even a software one (Vulkan, Metal, DX12).
    Wgpu,
    /// The CPU: igcam's convolution kernels and Burn's `flex` backend (threads and SIMD).
    Cpu,
    /// Burn's `ndarray` CPU backend (deprecated, slower; kept for comparisons in a build with
    /// `--features ndarray`).
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

impl Backend {
    /// `name (description)`, as recorded in the JSON `backend` field.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.description)
    }
}

/// Sizes the CPU backend's thread pool: `--threads`, else `RAYON_NUM_THREADS`, else all cores.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if let Some(n) = threads {
        // The pool can only be built once per process; a second call keeps the first size.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(())
}

/// Caps igcam's CPU kernels at the instruction set `IGCAM_CPU_ISA` names (`portable`, `avx2`
/// or `avx512`), for comparing their paths on one machine; unset, they use the widest the CPU
/// has.
pub fn set_cpu_isa() -> Result<()> {
    let Some(value) = std::env::var_os("IGCAM_CPU_ISA") else {
        return Ok(());
    };
    let value = value.to_string_lossy();
    let Some(cap) = isa::Isa::from_name(value.trim()) else {
        let names: Vec<_> = isa::Isa::ALL.iter().map(|i| i.name()).collect();
        bail!(
            "IGCAM_CPU_ISA `{value}` is not an instruction set: use one of {}, or unset it",
            names.join(", ")
        );
    };
    isa::set_cap(cap);
    Ok(())
}

/// Where CubeCL keeps autotune results and compiled kernels: the user's cache folder
/// (`$XDG_CACHE_HOME/igcam/cubecl`, else `~/.cache/igcam/cubecl`) instead of CubeCL's default,
/// a `target/` folder next to the nearest Cargo.toml or in the current folder. A `cubecl.toml`
/// that names a place still wins.
#[cfg(feature = "gpu-tuned")]
fn configure_gpu_cache() {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")));
    let Some(base) = base else {
        return;
    };
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if matches!(config.environment.path, CacheConfig::Target) {
        config.environment.path = CacheConfig::Directory(base.join("igcam").join("cubecl"));
    }
    // Only fails when something read the configuration already; it then stays as it is.
    let _ = CubeClRuntimeConfig::try_set(config);
}

/// An opened wgpu device and whether its adapter is a software rasterizer.
#[cfg(feature = "wgpu")]
fn open_wgpu() -> Option<(Backend, bool)> {
    #[cfg(feature = "gpu-tuned")]
    configure_gpu_cache();
    catch_unwind(AssertUnwindSafe(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        let identity = device.identity();
        // cubecl reports no physical card exactly for wgpu's `DeviceType::Cpu` adapters.
        let software = identity.as_ref().is_some_and(|i| i.physical.is_none());
        let name = identity
            .map(|i| i.name)
            .unwrap_or_else(|| "wgpu adapter".into());
        let probe = Tensor::<1>::ones([4], &device).sum().into_data();
        if probe.try_into_vec_as::<f32>().ok()? != vec![4.0] {
            return None;
        }
        Some((
            Backend {
                device,
                name: "wgpu",
                description: if TUNED {
                    format!("{name}, fusion + autotune")
                } else {
                    name
                },
            },
            software,
        ))
    }))
    .ok()
    .flatten()
}

/// Built without the `wgpu` feature: there is no adapter to open.
#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Option<(Backend, bool)> {
    None
}

/// Set in the environment of the child process that lists the adapters for `auto`.
const PROBE_VAR: &str = "IGCAM_LIST_ADAPTERS";

/// In the child `auto` starts ([`PROBE_VAR`] set): prints one line per wgpu adapter, `software`
/// or `gpu`, a tab and its name, and returns the exit code. `None` in any other process.
#[cfg(feature = "wgpu")]
pub fn list_adapters_if_asked() -> Option<std::process::ExitCode> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    std::env::var_os(PROBE_VAR)?;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let mut listing = Box::pin(instance.enumerate_adapters(wgpu::Backends::all()));
    // Native adapters are listed synchronously: the future is ready at its first poll.
    let Poll::Ready(adapters) = listing
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        return Some(std::process::ExitCode::FAILURE);
    };
    for info in adapters.iter().map(wgpu::Adapter::get_info) {
        let kind = match info.device_type {
            wgpu::DeviceType::Cpu => "software",
            _ => "gpu",
        };
        println!("{kind}\t{}", info.name.replace(['\n', '\t'], " "));
    }
    Some(std::process::ExitCode::SUCCESS)
}

/// Built without the `wgpu` feature: never the adapter-listing child.
#[cfg(not(feature = "wgpu"))]
pub fn list_adapters_if_asked() -> Option<std::process::ExitCode> {
    None
}

/// Set to `1` to make `auto` list the adapters even where [`may_have_gpu`] finds no GPU device.
const ALWAYS_PROBE_VAR: &str = "IGCAM_PROBE_ADAPTERS";

/// Whether this machine may have a GPU, from its device files alone (no driver loaded): on
/// Linux, a DRM render node (`/dev/dri/renderD*`: Mesa's drivers and NVIDIA's with modesetting),
/// an NVIDIA device (`/dev/nvidia*`) or WSL's GPU bridge (`/dev/dxg`); elsewhere, always. Without
/// one, `auto` goes straight to the CPU: a GPU-less machine then pays nothing for the choice,
/// where listing the adapters costs 50–120 ms of start-up.
fn may_have_gpu() -> bool {
    if std::env::var_os(ALWAYS_PROBE_VAR).is_some_and(|v| v == "1") || !cfg!(target_os = "linux") {
        return true;
    }
    let has_entry = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    has_entry("/dev/dri", "renderD")
        || has_entry("/dev", "nvidia")
        || std::path::Path::new("/dev/dxg").exists()
}

/// The name of the software adapter (llvmpipe, lavapipe, SwiftShader, WARP) when it is all the
/// machine's wgpu sees. Asked in a child process: in this one, even listing the adapters would
/// load the drivers (and LLVM with a software one) for the rest of the CPU run, and opening a
/// device would also start the rasterizer's threads. `None` when the child finds a GPU, none
/// at all, or fails (then `auto` opens wgpu here, as it always did).
#[cfg(feature = "wgpu")]
fn software_adapter_only() -> Option<String> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env(PROBE_VAR, "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let adapters: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    let all_software = !adapters.is_empty() && adapters.iter().all(|(kind, _)| *kind == "software");
    all_software.then(|| adapters[0].1.to_string())
}

/// Built without the `wgpu` feature: no adapter at all.
#[cfg(not(feature = "wgpu"))]
fn software_adapter_only() -> Option<String> {
    None
}

fn skipped_software(name: &str) -> Backend {
    eprintln!(
        "notice: skipped the software GPU adapter `{name}` (slower than the CPU backend here); running on the CPU, force it with --backend wgpu"
    );
    cpu()
}

/// Whether this build has Burn's fusion and autotuning (`gpu-tuned`).
pub const TUNED: bool = cfg!(feature = "gpu-tuned");

fn cpu() -> Backend {
    Backend {
        device: Device::flex(),
        name: "cpu",
        description: format!("Burn flex, {} threads", rayon::current_num_threads()),
    }
}

/// Opens the requested backend. `auto` says in one line which software adapter it skipped;
/// `wgpu` without a usable adapter falls back to the CPU with a one-line notice.
pub fn open(choice: BackendChoice) -> Backend {
    match choice {
        BackendChoice::Cpu => cpu(),
        // Deprecated upstream in favour of flex; kept for comparisons.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        BackendChoice::Ndarray => Backend {
            device: Device::ndarray(),
            name: "ndarray",
            description: "Burn ndarray".into(),
        },
        #[cfg(not(feature = "ndarray"))]
        BackendChoice::Ndarray => {
            eprintln!(
                "notice: built without the `ndarray` feature (add `--features ndarray` to the cargo build); running on flex instead"
            );
            cpu()
        }
        BackendChoice::Auto => {
            if !may_have_gpu() {
                return cpu();
            }
            if let Some(name) = software_adapter_only() {
                return skipped_software(&name);
            }
            match open_wgpu() {
                Some((gpu, false)) => gpu,
                Some((soft, true)) => skipped_software(&soft.description),
                None => cpu(),
            }
        }
        BackendChoice::Wgpu => match open_wgpu() {
            Some((b, _)) => b,
            None => {
                eprintln!(
                    "notice: no usable wgpu adapter (Vulkan, Metal or DX12) was found; running on the CPU instead"
                );
                cpu()
            }
        },
    }
}
