//! End-to-end numerics on the CPU backend against the PyTorch reference (relative L2 <= 1e-4):
//! logits, layer activations, gradients and every method's map.

mod common;

use burn::tensor::Device;

#[test]
fn resnet_tiny_matches_pytorch() {
    common::check_net("resnet_tiny", &Device::flex(), 1e-4, 1e-4);
}

#[test]
fn vgg_tiny_matches_pytorch() {
    common::check_net("vgg_tiny", &Device::flex(), 1e-4, 1e-4);
}

/// Pixel-level IG through EfficientNet-Lite0's 33 ReLU6 gates amplifies float rounding: PyTorch's
/// own IG map moves by 2.1e-3 (relative L2) between the BatchNorm-folded and unfolded forms of the
/// same network, so IG is held to 5e-3 here; logits, activations and every CAM map to 1e-4.
#[test]
fn efficientnet_lite0_matches_pytorch() {
    common::check_net("efficientnet_lite0", &Device::flex(), 1e-4, 5e-3);
}

#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; the CLI still offers it
fn ndarray_backend_agrees_on_resnet_tiny() {
    common::check_net("resnet_tiny", &Device::ndarray(), 1e-4, 1e-4);
}
