//! End-to-end numerics on the CPU backend against the PyTorch reference (relative L2 <= 1e-4):
//! logits, layer activations, gradients and every method's map.

mod common;

use burn::tensor::Device;

#[test]
fn resnet_tiny_matches_pytorch() {
    common::check_net("resnet_tiny", &Device::flex(), 1e-4);
}

#[test]
fn vgg_tiny_matches_pytorch() {
    common::check_net("vgg_tiny", &Device::flex(), 1e-4);
}

#[test]
fn efficientnet_lite0_matches_pytorch() {
    common::check_net("efficientnet_lite0", &Device::flex(), 1e-4);
}

#[test]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; the CLI still offers it
fn ndarray_backend_agrees_on_resnet_tiny() {
    common::check_net("resnet_tiny", &Device::ndarray(), 1e-4);
}
