//! End-to-end numerics on Burn's wgpu backend (any adapter; CI uses the software Vulkan
//! adapter lavapipe) against the PyTorch reference (relative L2 <= 1e-3).
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::{Device, DeviceKind};

fn device() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

#[test]
fn resnet_tiny_matches_pytorch_on_wgpu() {
    common::check_net("resnet_tiny", &device(), 1e-3, 1e-3);
}

#[test]
fn vgg_tiny_matches_pytorch_on_wgpu() {
    common::check_net("vgg_tiny", &device(), 1e-3, 1e-3);
}
