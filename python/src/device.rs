//! The `backend=` choice: `cpu` (igcam's kernels on Burn's flex backend), `wgpu` (the best
//! adapter, even a software one), or `auto`: a real GPU through wgpu when there is one, else
//! the CPU, as the CLI chooses. On Linux without a GPU device file `auto` takes the CPU without
//! loading any driver.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::{Device, DeviceKind, Tensor};

/// An opened device and what to call it (`cpu (Burn flex, 2 threads)`).
pub struct Opened {
    pub device: Device,
    pub label: String,
}

/// Opens `choice` (`auto`, `cpu` or `wgpu`), with a notice when `wgpu` had to fall back to the
/// CPU; `None` for any other name.
pub fn open(choice: &str) -> Option<(Opened, Option<String>)> {
    match choice {
        "cpu" => Some((cpu(), None)),
        "wgpu" => Some(match wgpu() {
            Some((gpu, _)) => (gpu, None),
            None => (
                cpu(),
                Some("no usable wgpu adapter (Vulkan, Metal or DX12) was found; running on the CPU instead".into()),
            ),
        }),
        "auto" if !may_have_gpu() => Some((cpu(), None)),
        "auto" => Some((
            match wgpu() {
                Some((gpu, false)) => gpu,
                _ => cpu(),
            },
            None,
        )),
        _ => None,
    }
}

fn cpu() -> Opened {
    Opened {
        device: Device::flex(),
        label: format!("cpu (Burn flex, {} threads)", rayon::current_num_threads()),
    }
}

/// wgpu's default device, checked with a sum, and whether it is a software rasterizer.
fn wgpu() -> Option<(Opened, bool)> {
    catch_unwind(AssertUnwindSafe(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        let identity = device.identity();
        // cubecl reports no physical card exactly for software adapters.
        let software = identity.as_ref().is_some_and(|i| i.physical.is_none());
        let name = identity.map_or_else(|| "wgpu adapter".into(), |i| i.name);
        let sum = Tensor::<1>::ones([4], &device).sum().into_data();
        (sum.try_into_vec::<f32>().ok()? == vec![4.0]).then(|| {
            let label = format!("wgpu ({name})");
            (Opened { device, label }, software)
        })
    }))
    .ok()
    .flatten()
}

/// Whether the machine may have a GPU: on Linux, a DRM render node, an NVIDIA device or WSL's
/// GPU bridge; elsewhere, always.
fn may_have_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let has = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    has("/dev/dri", "renderD") || has("/dev", "nvidia") || std::path::Path::new("/dev/dxg").exists()
}
