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

/// FullGrad off the CPU backend: Burn's autodiff from each biased layer in turn, against
/// pytorch-grad-cam's FullGrad; the ResNet's biases are its BatchNormalizations', the VGG's
/// its convolutions' and BatchNormalizations'.
#[test]
fn fullgrad_matches_pytorch_grad_cam_on_wgpu() {
    use igcam::Request;
    use igcam::cam::Method;
    for net in ["resnet_tiny", "vgg_tiny"] {
        let library = common::json(&format!("nets/{net}_gradcam.json"));
        let (explainer, prepared) = common::explainer(net, &device());
        let target = library["target"].as_u64().unwrap() as usize;
        let request = Request::new(vec![target], vec![Method::parse("fullgrad").unwrap()], 1);
        let e = common::explain(&explainer, &prepared, &request).remove(0);
        let (want, _) = common::array(&library["fullgrad"]);
        common::assert_close(
            &format!("{net} fullgrad (wgpu)"),
            &e.map.values,
            &want,
            1e-3,
        );
    }
}

/// ShapleyCAM's Hessian-vector product runs on the host kernels: off the CPU backend a request
/// for it is refused before any work, in one line, and `all` leaves it out.
#[test]
fn shapleycam_is_refused_off_the_cpu_backend() {
    use igcam::Request;
    use igcam::cam::Method;
    let (explainer, prepared) = common::explainer("resnet_tiny", &device());
    let shapley = Method::parse("shapleycam").unwrap();
    let request = Request::new(vec![0], vec![shapley], 1);
    let error = explainer
        .explain(&prepared, &request, &mut |_, _| {})
        .expect_err("ShapleyCAM on wgpu is refused");
    assert_eq!(
        error.to_string(),
        "ShapleyCAM runs on the CPU backend only: its Hessian-vector product comes from igcam's own reverse pass, and Burn's autodiff on other devices is first-order; explain on the CPU or pick another method"
    );
    let on_gpu: Vec<Method> = Method::all_on(&device()).collect();
    assert_eq!(on_gpu.len(), Method::all().count() - 1);
    assert!(!on_gpu.contains(&shapley));
    assert!(Method::all_on(&Device::flex()).any(|m| m == shapley));
}
