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

/// Segmenters and detectors off the CPU backend (Burn's autodiff, the page's WebGPU path):
/// their bilinear and nearest `Resize`s run as matrix products there (Burn's GPU backends
/// have no reverse step of a bilinear interpolation), and the maps equal pytorch-grad-cam's:
/// each segmenter's largest region by Grad-CAM and IG-CAM (m = 4, batches of 2), and YOLOv8's
/// best detection by Grad-CAM over its three default layers, averaged.
#[test]
fn segmenters_and_detectors_match_pytorch_grad_cam_on_wgpu() {
    use igcam::cam::Method;
    use igcam::onnx::OnnxModel;
    use igcam::preprocess::{self, Preset};
    use igcam::{Explainer, ExplainerOptions, Request};
    let photo = preprocess::decode(&std::fs::read(common::fixture("zoo/input.png")).unwrap())
        .unwrap()
        .to_rgb8();
    let load = |file: &str, preset: Preset| {
        let bytes = std::fs::read(common::fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device()).unwrap();
        let options = ExplainerOptions {
            batch: Some(2),
            preset,
            ..ExplainerOptions::default()
        };
        let explainer = Explainer::new(model, Vec::new(), options).unwrap();
        let prepared = explainer.prepare_fitted(photo.clone()).unwrap();
        (explainer, prepared)
    };
    let mut checked = Vec::new();
    let segmenters = common::json("zoo/segmenters.json");
    for case in segmenters["cases"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        if !file.ends_with("_opset17.onnx") {
            continue;
        }
        let (explainer, prepared) = load(file, Preset::Imagenet);
        let target = &case["targets"][0];
        let class = target["class"].as_u64().unwrap() as usize;
        for (method, steps) in [("gradcam", 1), ("igcam", 4)] {
            let request = Request::new(vec![class], vec![Method::parse(method).unwrap()], steps);
            let maps = common::explain(&explainer, &prepared, &request);
            let (want, _) = common::array(&target[method]);
            common::assert_close(
                &format!("{file} class {class} {method} (wgpu)"),
                &maps[0].map.values,
                &want,
                1e-3,
            );
            checked.push(format!("{file} {method}"));
        }
    }
    assert_eq!(checked.len(), 6, "{checked:?}");
    let detectors = common::json("zoo/detectors.json");
    let (explainer, prepared) = load("yolov8_opset17.onnx", Preset::Raw01);
    let want = &detectors["families"]["yolov8"]["targets"][0]["gradcam_all_layers"];
    let request = Request::new(vec![0], vec![Method::parse("gradcam").unwrap()], 1);
    let maps = common::explain(&explainer, &prepared, &request);
    assert_eq!(maps[0].layer.split(',').count(), 3);
    common::assert_close(
        "yolov8_opset17 det0 gradcam, three layers (wgpu)",
        &maps[0].map.values,
        &common::array(want).0,
        1e-3,
    );
}
