//! The model zoo (fixtures from `tests/reference/make_zoo.py` and
//! `make_transformer_zoo.py`): eleven CNN families and four vision transformers, narrowed,
//! each exported by the legacy exporter at opset 17 and 13 and by the new `dynamo=True`
//! exporter with a fixed batch of 1. For every export: it loads, the default layer is the
//! feature map that feeds the network's pooling (for a transformer, the tokens its last
//! attention block reads), and the logits, the Grad-CAM map and the IG-CAM map (its path run
//! in batches of 2) there equal PyTorch's (pytorch-grad-cam's, with its `reshape_transform`,
//! for the transformers; relative L2 <= 1e-4).

mod common;

use burn::tensor::Device;
use common::{array, fixture, json, rel_l2};
use igcam::cam::Method;
use igcam::onnx::OnnxModel;
use igcam::onnx::objective::Objective;
use igcam::task::Task;
use igcam::{Explainer, ExplainerOptions, Request, preprocess};

const FAMILIES: [&str; 11] = [
    "efficientnet",
    "mobilenet_v3_small",
    "googlenet",
    "inception_v3",
    "squeezenet",
    "densenet",
    "shufflenet_v2",
    "convnext",
    "regnet_y",
    "resnest",
    "mobilevit",
];
/// Vision transformers (`transformers.json`): timm's ViT, timm's distilled DeiT (a class and
/// a distillation token before the patches), Hugging Face's ViT and timm's Swin (channels-last
/// tokens, shifted windows partitioned through rank-6 tensors).
const TRANSFORMERS: [&str; 4] = ["vit", "deit_distilled", "hf_vit", "swin"];
const EXPORTERS: [&str; 3] = ["opset17", "opset13", "dynamo"];
/// Exports PyTorch itself refuses: MobileViT's and timm's fused attention need opset 14.
const NOT_EXPORTABLE: [&str; 3] = ["mobilevit_opset13", "vit_opset13", "deit_distilled_opset13"];

/// Every export of the zoo: the CNNs' and the transformers'.
fn all_cases() -> Vec<serde_json::Value> {
    let mut cases = Vec::new();
    for file in ["zoo/zoo.json", "zoo/transformers.json"] {
        let zoo = json(file);
        assert_eq!(zoo["steps"], 4, "{file}: IG-CAM's path steps");
        cases.extend(zoo["cases"].as_array().unwrap().iter().cloned());
    }
    cases
}

/// What differs from PyTorch in one export, or `None` when everything matches.
fn check(case: &serde_json::Value, steps: usize, device: &Device) -> Option<String> {
    let file = case["model"].as_str().unwrap();
    let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
    let model = match OnnxModel::from_bytes(&bytes, device) {
        Ok(m) => m,
        Err(e) => return Some(format!("{file}: does not load: {e}")),
    };
    let layer = case["layer"].as_str().unwrap();
    let default = model.default_layer();
    if default.as_deref() != Some(layer) {
        return Some(format!("{file}: default layer {default:?}, want `{layer}`"));
    }
    // Path points in batches of 2: the fixed-batch exports must run batches.
    let options = ExplainerOptions {
        batch: Some(2),
        ..ExplainerOptions::default()
    };
    let explainer = Explainer::new(model, Vec::new(), options).unwrap();
    let photo = zoo_photo();
    let prepared = explainer.prepare_fitted(photo).unwrap();
    let logits_error = rel_l2(&prepared.logits, &array(&case["logits"]).0);
    if logits_error > 1e-4 {
        return Some(format!(
            "{file}: logits differ (relative L2 {logits_error:.2e})"
        ));
    }
    let target = case["target"].as_u64().unwrap() as usize;
    for (method, steps) in [("gradcam", 1), ("igcam", steps)] {
        let request = Request::new(vec![target], vec![Method::parse(method).unwrap()], steps);
        let maps = explainer
            .explain(&prepared, &request, &mut |_, _| {})
            .unwrap();
        let (want, shape) = array(&case[method]);
        let map = &maps[0].map;
        if vec![map.height, map.width] != shape {
            return Some(format!(
                "{file}: {method} map {}x{}, want {shape:?}",
                map.height, map.width
            ));
        }
        let error = rel_l2(&map.values, &want);
        if error > 1e-4 {
            return Some(format!(
                "{file}: {method} differs (relative L2 {error:.2e})"
            ));
        }
    }
    None
}

#[test]
fn every_family_and_exporter_loads_picks_the_feature_map_and_matches_pytorch() {
    let cases = all_cases();
    let mut listed: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "{}_{}",
                c["family"].as_str().unwrap(),
                c["exporter"].as_str().unwrap()
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<String> = FAMILIES
        .iter()
        .chain(&TRANSFORMERS)
        .flat_map(|f| EXPORTERS.iter().map(move |e| format!("{f}_{e}")))
        .filter(|name| !NOT_EXPORTABLE.contains(&name.as_str()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "the zoo holds every family x exporter");
    let device = Device::flex();
    let steps = 4;
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c, steps, &device))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} exports differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Families (every exporter) and single exports with an op that has no host gradient on the
/// way to the input: their pixel IG runs on Burn's autodiff; every other export on the host
/// reverse pass (ShuffleNet's channel shuffle too, since `Transpose` has one; ConvNeXt's and
/// Hugging Face ViT's layer normalisation, GELU and attention products; timm's ViT, DeiT and
/// MobileViT's rank-5 q/k/v `Split` or `Slice`, and Swin's rank-6 window partition and rank-5
/// attention-mask `Add`, since this round). ResNeSt sums a rank-5 tensor (`ReduceSum`), and
/// ConvNeXt's dynamo export holds a float `Gather` of many indices (`as_strided`).
const AUTODIFF_GRADIENT: [&str; 2] = ["resnest", "convnext_dynamo"];

/// Every export's input gradient, where the host reverse pass applies, equals Burn's autodiff
/// gradient (relative L2 <= 1e-5) on a batch of two path points; and it applies to exactly
/// the exports not in [`AUTODIFF_GRADIENT`].
#[test]
fn host_input_gradient_equals_autodiff_where_it_applies() {
    let device = Device::flex();
    let mut host_cases = Vec::new();
    let mut failures = Vec::new();
    for case in &all_cases() {
        let file = case["model"].as_str().unwrap();
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        let (x, b) = common::photo_inputs("zoo/input.png", &model, &device);
        let batch = if model.batch_breaker().is_some() {
            1
        } else {
            2
        };
        let alphas = [0.5, 1.0];
        let points = common::path_points(&x, &b, &alphas[..batch]);
        let target = case["target"].as_u64().unwrap() as usize;
        let Some(host) = model.host_input_gradient(points.clone(), target).unwrap() else {
            continue;
        };
        host_cases.push(file.trim_end_matches(".onnx").to_string());
        let autodiff = common::autodiff_input_gradient(&model, points, target);
        let error = rel_l2(&common::host(host), &common::host(autodiff));
        if error > 1e-5 {
            failures.push(format!("{file}: relative L2 {error:.2e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let mut expected: Vec<String> = all_cases()
        .iter()
        .filter(|c| {
            let stem = c["model"].as_str().unwrap().trim_end_matches(".onnx");
            ![c["family"].as_str().unwrap(), stem]
                .iter()
                .any(|name| AUTODIFF_GRADIENT.contains(name))
        })
        .map(|c| {
            c["model"]
                .as_str()
                .unwrap()
                .trim_end_matches(".onnx")
                .to_string()
        })
        .collect();
    expected.sort();
    host_cases.sort();
    assert_eq!(host_cases, expected, "the exports on the host reverse pass");
}

/// Every transformer export runs its path points in batches (the legacy exporter's class-token
/// `Expand` to a batch of 1 follows the run's batch), lists its token tensors as layers, and
/// explains its default layer as the 8×8 patch grid with 32 channels; a token tensor's
/// leading tokens are the ones the fixture says (none: Swin's channels-last `[1, 8, 8, 32]`).
#[test]
fn transformers_run_in_batches_and_explain_their_patch_grid() {
    let device = Device::flex();
    let zoo = json("zoo/transformers.json");
    for case in zoo["cases"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        assert_eq!(model.batch_breaker(), None, "{file}");
        let layer = case["layer"].as_str().unwrap();
        assert_eq!(model.layer_shape(layer).unwrap(), [1, 32, 8, 8], "{file}");
        let listed = model
            .layers()
            .into_iter()
            .find(|l| l.name == layer)
            .unwrap();
        assert_eq!(listed.explained_as, [1, 32, 8, 8], "{file}");
        let (_, why) = model.default_layer_reason().unwrap();
        let (shape, grid) = match case["leading"].as_u64() {
            Some(leading) => (
                vec![1, leading as usize + 64, 32],
                format!("as the 8×8 patch grid, without the {leading} leading token(s)"),
            ),
            None => (
                vec![1, 8, 8, 32],
                "as the 8×8 grid of its channels-last tokens".to_string(),
            ),
        };
        assert_eq!(listed.shape, shape, "{file}");
        assert!(why.ends_with(&grid), "{file}: {why}");
    }
}

/// Segmenters (`segmenters.json`, from `tests/reference/make_segmentation_zoo.py`):
/// torchvision's FCN, DeepLabV3 and LR-ASPP heads on a narrowed MobileNetV3, under every
/// exporter. Each loads as a segmenter whose default layer is the backbone's output; its
/// classes' regions (where each scores highest) have the sizes PyTorch's have; and for the two
/// largest regions, Grad-CAM, IG-CAM (their path in batches of 2) and ShapleyCAM (its Hessian
/// term through the heads' upsampling, LR-ASPP's Sigmoid gate too) of the class's scores
/// summed over its region equal pytorch-grad-cam's with its `SemanticSegmentationTarget`
/// (relative L2 <= 1e-4).
#[test]
fn segmenters_explain_each_class_region_as_pytorch_grad_cam() {
    let zoo = json("zoo/segmenters.json");
    let device = Device::flex();
    let photo = zoo_photo();
    let mut listed = Vec::new();
    let mut failures = Vec::new();
    for case in zoo["cases"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        listed.push(file.trim_end_matches(".onnx").to_string());
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        assert!(model.is_segmenter(), "{file}");
        assert_eq!(model.num_classes(), 4, "{file}");
        assert_eq!(model.output_plane(), [128, 128], "{file}");
        assert_eq!(
            model.default_layer().as_deref(),
            case["layer"].as_str(),
            "{file}"
        );
        let options = ExplainerOptions {
            batch: Some(2),
            ..ExplainerOptions::default()
        };
        let explainer = Explainer::new(model, Vec::new(), options).unwrap();
        let prepared = explainer.prepare_fitted(photo.clone()).unwrap();
        let regions = prepared.regions().unwrap();
        let want: Vec<usize> = case["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(regions.pixels(), want, "{file}: region sizes");
        let present = explainer.resolve_targets(&prepared, &["present"]).unwrap();
        let mut largest: Vec<usize> = (0..4).filter(|&c| want[c] > 0).collect();
        largest.sort_by_key(|&c| std::cmp::Reverse(want[c]));
        assert_eq!(present, largest, "{file}: present, the largest first");
        // topK takes the K largest regions, never a class without one.
        let top4 = explainer.resolve_targets(&prepared, &["top4"]).unwrap();
        assert_eq!(top4, largest, "{file}: top4");
        for target in case["targets"].as_array().unwrap() {
            let class = target["class"].as_u64().unwrap() as usize;
            for (method, steps) in [("gradcam", 1), ("igcam", 4), ("shapleycam", 1)] {
                let request =
                    Request::new(vec![class], vec![Method::parse(method).unwrap()], steps);
                let maps = explainer
                    .explain(&prepared, &request, &mut |_, _| {})
                    .unwrap();
                let error = rel_l2(&maps[0].map.values, &array(&target[method]).0);
                if error > 1e-4 {
                    failures.push(format!("{file}: class {class} {method}: {error:.2e}"));
                }
            }
        }
    }
    listed.sort();
    let mut expected: Vec<String> = ["fcn", "deeplabv3", "lraspp"]
        .iter()
        .flat_map(|f| EXPORTERS.iter().map(move |e| format!("{f}_{e}")))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Detectors (`detectors.json`, from `tests/reference/make_detection_zoo.py`): ultralytics
/// YOLOv8 and YOLO11 and the yolov5 package's YOLOv5 (narrowed, 3 classes), each exported by
/// the legacy exporter at opset 17 and by the dynamo exporter. Each loads as a detector whose
/// default layers are the three neck outputs its head reads; its detections after the
/// confidence threshold and NMS are the reference post-processing's of PyTorch's raw output
/// (same anchors and classes, confidences within 1e-4, boxes IoU >= 0.99); and for the two
/// most confident detections, Grad-CAM and IG-CAM (4 steps, in batches of 2) of the
/// detection's confidence at its anchor equal pytorch-grad-cam's at every neck layer, and the
/// default three-layer Grad-CAM its several `target_layers` average (relative L2 <= 1e-4).
#[test]
fn detectors_explain_each_detection_as_pytorch_grad_cam() {
    let zoo = json("zoo/detectors.json");
    let device = Device::flex();
    let photo = zoo_photo();
    let mut listed = Vec::new();
    let mut failures = Vec::new();
    for case in zoo["cases"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        let family = &zoo["families"][case["family"].as_str().unwrap()];
        listed.push(file.trim_end_matches(".onnx").to_string());
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        let layout = *model.detector().expect(file);
        assert_eq!(layout.classes, 3, "{file}");
        assert_eq!(layout.objectness, file.starts_with("yolov5"), "{file}");
        let layers: Vec<String> = case["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        let (defaults, why) = model.default_layers_reason().unwrap();
        assert_eq!(defaults, layers, "{file}: the neck outputs");
        assert!(
            why.starts_with(
                "the neck outputs the detection head reads, one per scale (16×16, 8×8, 4×4)"
            ),
            "{file}: {why}"
        );
        let options = ExplainerOptions {
            batch: Some(2),
            preset: preprocess::Preset::Raw01,
            ..ExplainerOptions::default()
        };
        let explainer = Explainer::new(model, Vec::new(), options).unwrap();
        let prepared = explainer.prepare_fitted(photo.clone()).unwrap();
        let got = prepared.detections().unwrap();
        let want = family["detections"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{file}: detections");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let wbox = ["x0", "y0", "x1", "y1"].map(|k| w[k].as_f64().unwrap() as f32);
            assert_eq!(
                (g.anchor, g.class),
                (
                    w["anchor"].as_u64().unwrap() as usize,
                    w["class"].as_u64().unwrap() as usize
                ),
                "{file}: detection {i}"
            );
            assert!(
                (g.score - w["score"].as_f64().unwrap() as f32).abs() < 1e-4,
                "{file}: detection {i} score {}",
                g.score
            );
            assert!(
                iou(g.bbox, wbox) >= 0.99,
                "{file}: detection {i} box {:?} vs {wbox:?}",
                g.bbox
            );
        }
        // Targets are detections: all, the K best, one by index, or a class's every one.
        let n = got.len();
        assert_eq!(
            explainer.resolve_targets(&prepared, &["all"]).unwrap(),
            (0..n).collect::<Vec<_>>()
        );
        assert_eq!(
            explainer
                .resolve_targets(&prepared, &["top2", "det3"])
                .unwrap(),
            [0, 1, 3]
        );
        let of_class = explainer.resolve_targets(&prepared, &["1"]).unwrap();
        assert!(
            of_class.iter().all(|&d| got[d].class == 1)
                && of_class.len() == got.iter().filter(|d| d.class == 1).count(),
            "{file}"
        );
        for (k, target) in family["targets"].as_array().unwrap().iter().enumerate() {
            for (l, reference) in target["layers"].as_array().unwrap().iter().enumerate() {
                for (method, steps) in [("gradcam", 1), ("igcam", 4)] {
                    let mut request =
                        Request::new(vec![k], vec![Method::parse(method).unwrap()], steps);
                    request.layer = Some(layers[l].clone());
                    let maps = explainer
                        .explain(&prepared, &request, &mut |_, _| {})
                        .unwrap();
                    let error = rel_l2(&maps[0].map.values, &array(&reference[method]).0);
                    if error > 1e-4 {
                        failures.push(format!("{file}: det{k} layer {l} {method}: {error:.2e}"));
                    }
                }
            }
            if k == 0 && n > 16 {
                // Every detection in one request (gradients taken in groups):
                // each map is the one its detection gets alone.
                let all =
                    Request::new((0..n).collect(), vec![Method::parse("gradcam").unwrap()], 1);
                let maps = explainer.explain(&prepared, &all, &mut |_, _| {}).unwrap();
                assert_eq!(maps.len(), n, "{file}");
                for d in [0, n - 1] {
                    let alone = Request::new(vec![d], vec![Method::parse("gradcam").unwrap()], 1);
                    let one = explainer
                        .explain(&prepared, &alone, &mut |_, _| {})
                        .unwrap();
                    let error = rel_l2(&maps[d].map.values, &one[0].map.values);
                    assert!(
                        error < 1e-6,
                        "{file}: det{d} among all vs alone: {error:.2e}"
                    );
                }
            }
            if let Some(reference) = target.get("gradcam_all_layers") {
                let request = Request::new(vec![k], vec![Method::parse("gradcam").unwrap()], 1);
                let maps = explainer
                    .explain(&prepared, &request, &mut |_, _| {})
                    .unwrap();
                assert_eq!(maps[0].layer, layers.join(","), "{file}");
                let error = rel_l2(&maps[0].map.values, &array(reference).0);
                if error > 1e-4 {
                    failures.push(format!("{file}: det{k} all layers gradcam: {error:.2e}"));
                }
            }
        }
    }
    listed.sort();
    let mut expected: Vec<String> = ["yolov8", "yolo11", "yolov5"]
        .iter()
        .flat_map(|f| ["opset17", "dynamo"].map(|e| format!("{f}_{e}")))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A detection's score (times its objectness in YOLOv5's layout) is a value or two of the
/// output: the host reverse pass (every layout takes it, YOLOv5's rank-5 `Concat` too)
/// carries its gradient as the box around its receptive field (`onnx::boxed`) wherever the
/// ops allow, and the input gradient it ends with equals Burn's autodiff of the same objective
/// (relative L2 <= 1e-5), for each detector export and for a detection of every scale.
#[test]
fn a_detections_input_gradient_from_its_box_equals_autodiff() {
    let zoo = json("zoo/detectors.json");
    let device = Device::flex();
    let mut failures = Vec::new();
    for case in zoo["cases"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        let family = &zoo["families"][case["family"].as_str().unwrap()];
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        let layout = *model.detector().unwrap();
        let (x, _) = common::photo_inputs("zoo/input.png", &model, &device);
        // The 16x16, 8x8 and 4x4 grids' anchors: 0..256, 256..320, 320..336.
        let mut scales = [false; 3];
        for d in family["detections"].as_array().unwrap() {
            let anchor = d["anchor"].as_u64().unwrap() as usize;
            let scale = [256, 320, usize::MAX]
                .iter()
                .position(|&e| anchor < e)
                .unwrap();
            if std::mem::replace(&mut scales[scale], true) {
                continue;
            }
            let class = d["class"].as_u64().unwrap() as usize;
            let objective = Objective::Detection {
                index: layout.class_index(anchor, class),
                objectness: layout.objectness_index(anchor),
            };
            // The score alone, on the host reverse pass (every layout takes it now).
            let index = layout.class_index(anchor, class);
            let host = model.host_input_gradient(x.clone(), index).unwrap();
            let host = host.unwrap_or_else(|| panic!("{file}: no host reverse pass"));
            let autodiff = common::autodiff_input_gradient(&model, x.clone(), index);
            let error = rel_l2(&common::host(host), &common::host(autodiff));
            if error > 1e-5 {
                failures.push(format!("{file}: anchor {anchor} score: {error:.2e}"));
            }
            // The objective itself (times the objectness in YOLOv5's layout), on the same
            // host pass (the model has not fallen back to autodiff: the score's took it).
            let host = model
                .objective_input_gradient(x.clone(), &objective)
                .unwrap();
            let leaf = x.clone().autodiff().require_grad();
            let logits = model.forward(leaf.clone()).unwrap();
            let grads = objective.of_logits(logits).backward();
            let autodiff = leaf.grad(&grads).unwrap();
            let error = rel_l2(&common::host(host), &common::host(autodiff));
            if error > 1e-5 {
                failures.push(format!("{file}: anchor {anchor}: relative L2 {error:.2e}"));
            }
        }
        assert!(
            scales.iter().filter(|&&s| s).count() >= 2,
            "{file}: {scales:?}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ShapleyCAM's `H·A` through YOLOv5's head (its rank-5 `Concat`, `Sigmoid`s and products)
/// equals the central difference of the layer gradient along the activations,
/// `(g(A (1 + e)) - g(A (1 - e))) / 2e` (float32, e = 1e-2: relative L2 <= 5e-3), at each neck
/// layer, for the best detection's score times its objectness.
#[test]
fn yolov5s_hessian_vector_product_equals_the_gradients_central_difference() {
    let device = Device::flex();
    let zoo = json("zoo/detectors.json");
    let bytes = std::fs::read(fixture("zoo/yolov5_opset17.onnx")).unwrap();
    let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
    let layout = *model.detector().unwrap();
    let d = &zoo["families"]["yolov5"]["detections"][0];
    let anchor = d["anchor"].as_u64().unwrap() as usize;
    let objective = Objective::Detection {
        index: layout.class_index(anchor, d["class"].as_u64().unwrap() as usize),
        objectness: layout.objectness_index(anchor),
    };
    // RGB / 255, as the detections were found.
    let (x, _) = preprocess::input_pair(
        &zoo_photo(),
        preprocess::Preset::Raw01,
        preprocess::Baseline::Black,
        &device,
    );
    let (layers, _) = model.default_layers_reason().unwrap();
    let mut reached = 0;
    for layer in &layers {
        let (a, env) = model.forward_to(x.clone(), layer).unwrap();
        let product = model
            .layer_hessian_product(layer, &a, &env, &objective)
            .unwrap();
        let e = 1e-2;
        let at = |s: f32| {
            let g = model.layer_gradient(layer, &a.clone().mul_scalar(s), &env, &objective);
            common::host(g.unwrap())
        };
        let (up, down) = (at(1.0 + e), at(1.0 - e));
        let want: Vec<f32> = up
            .iter()
            .zip(&down)
            .map(|(u, d)| (u - d) / (2.0 * e))
            .collect();
        let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm < 1e-6 {
            continue;
        }
        reached += 1;
        let error = rel_l2(&common::host(product), &want);
        assert!(
            error <= 5e-3,
            "{layer}: relative L2 {error:.2e} (|H·A| {norm})"
        );
    }
    assert_eq!(reached, layers.len(), "every neck layer's H·A is nonzero");
}

#[test]
fn ultralytics_segment_and_pose_exports_explain_their_boxes() {
    // Exported by ultralytics' own exporter: its metadata names the task and the classes.
    let zoo = json("zoo/ultralytics_tasks.json");
    let device = Device::flex();
    let photo = zoo_photo();
    let mut tasks = Vec::new();
    for case in zoo["models"].as_array().unwrap() {
        let file = case["model"].as_str().unwrap();
        let task = case["task"].as_str().unwrap();
        tasks.push(task.to_string());
        let names: Vec<String> = serde_json::from_value(case["names"].clone()).unwrap();
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        // The segmentation model's mask prototypes (`output1`, made by a ConvTranspose igcam
        // does not run) are never built: only what `output0` depends on is.
        let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
        assert_eq!(model.metadata().task.as_deref(), Some(task), "{file}");
        assert_eq!(model.metadata().names.as_ref(), Some(&names), "{file}");
        let layout = *model.detector().expect(file);
        let extra = case["extra"].as_u64().unwrap() as usize;
        assert_eq!(
            (layout.classes, layout.extra, layout.objectness),
            (names.len(), extra, false),
            "{file}"
        );
        let (found, why) = Task::of(&model);
        let what = if task == "segment" {
            "mask coefficients"
        } else {
            "keypoint values"
        };
        assert_eq!(found, Task::Detect, "{file}");
        assert!(
            why.ends_with(&format!(
                "then {extra} values not explained (ultralytics YOLOv8/11's layout); an Ultralytics `{task}` model, explained through its boxes (its {what} are left out)"
            )),
            "{file}: {why}"
        );
        assert_eq!(Task::model_labels(&model), Some(names.clone()), "{file}");
        let options = ExplainerOptions {
            preset: preprocess::Preset::Raw01,
            ..ExplainerOptions::default()
        };
        let explainer = Explainer::new(model, names, options).unwrap();
        let prepared = explainer.prepare_fitted(photo.clone()).unwrap();
        let got = prepared.detections().unwrap();
        let want = case["detections"].as_array().unwrap();
        let summary = |d: &serde_json::Value| {
            (
                d["anchor"].as_u64().unwrap() as usize,
                d["class"].as_u64().unwrap() as usize,
            )
        };
        assert_eq!(
            got.iter().map(|g| (g.anchor, g.class)).collect::<Vec<_>>(),
            want.iter().map(summary).collect::<Vec<_>>(),
            "{file}: ultralytics' detections"
        );
        for (g, w) in got.iter().zip(want) {
            let wbox = ["x0", "y0", "x1", "y1"].map(|k| w[k].as_f64().unwrap() as f32);
            assert!(
                (g.score - w["score"].as_f64().unwrap() as f32).abs() < 1e-4,
                "{file}"
            );
            assert!(
                iou(g.bbox, wbox) >= 0.99,
                "{file}: {:?} vs {wbox:?}",
                g.bbox
            );
        }
        // The best detection over the three neck outputs (the default layers).
        let request = Request::new(vec![0], vec![Method::parse("gradcam").unwrap()], 1);
        let maps = explainer
            .explain(&prepared, &request, &mut |_, _| {})
            .unwrap();
        let error = rel_l2(&maps[0].map.values, &array(&case["gradcam_all_layers"]).0);
        assert!(error < 1e-4, "{file}: Grad-CAM {error:.2e}");
    }
    assert_eq!(tasks, ["segment", "pose"]);
}

#[test]
fn ultralytics_heads_igcam_cannot_read_are_refused_in_one_line() {
    use onnx_ir::{Message, ModelProto};
    let bytes = std::fs::read(fixture("zoo/yolov8_seg.onnx")).unwrap();
    // The segmentation export with its metadata edited: `keep` decides which entries stay,
    // `task` replaces the task.
    let edited = |keep: &dyn Fn(&str) -> bool, task: &str| {
        let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
        model.metadata_props.retain(|p| keep(&p.key));
        for p in model.metadata_props.iter_mut().filter(|p| p.key == "task") {
            p.value = task.to_string();
        }
        let error = OnnxModel::from_bytes(&model.write_to_bytes().unwrap(), &Device::flex())
            .err()
            .unwrap()
            .to_string();
        assert!(!error.contains('\n'), "{error}");
        error
    };
    assert_eq!(
        edited(&|_| true, "obb"),
        "an Ultralytics oriented-box model (its metadata says task `obb`): its rotated boxes are not supported; export a `detect`, `segment` or `pose` model"
    );
    for task in ["segment", "pose"] {
        assert_eq!(
            edited(&|k| k != "names", task),
            format!(
                "an Ultralytics `{task}` model whose metadata names no usable classes (`names`): where its class scores end and its {} begin is unknown; re-export it with ultralytics' exporter",
                if task == "segment" {
                    "mask coefficients"
                } else {
                    "keypoint values"
                }
            )
        );
    }
    // Without any ultralytics metadata it is a plain detector with 35 classes: igcam cannot
    // tell mask coefficients from class scores then (the README says so).
    let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
    model.metadata_props.clear();
    let plain = OnnxModel::from_bytes(&model.write_to_bytes().unwrap(), &Device::flex()).unwrap();
    assert_eq!(plain.detector().unwrap().classes, 35);
}

/// The zoo's 128×128 photo (`input.png`), the one every reference map was made from.
fn zoo_photo() -> image::RgbImage {
    let bytes = std::fs::read(fixture("zoo/input.png")).unwrap();
    preprocess::decode(&bytes).unwrap().to_rgb8()
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / (area(a) + area(b) - w * h)
}

/// ShapleyCAM across the zoo on the CPU backend. At the default layer of EfficientNet and
/// DenseNet (the feature map before their pooling and linear head) the Hessian term is 0 and
/// ShapleyCAM is Grad-CAM, exactly; MobileNetV3's classifier has a HardSwish between its two
/// linear layers, and a YOLOv8 head Sigmoid, Softmax, Split, Concat and SiLU convolutions after
/// its neck: there it runs and moves the map. A ViT, with a LayerNormalization after its layer,
/// is refused in one line naming that node.
#[test]
fn shapleycam_runs_where_ops_have_second_order_rules_and_names_the_op_where_not() {
    let methods = vec![
        Method::parse("gradcam").unwrap(),
        Method::parse("shapleycam").unwrap(),
    ];
    let open = |file: &str| {
        let bytes = std::fs::read(fixture(&format!("zoo/{file}"))).unwrap();
        let model = OnnxModel::from_bytes(&bytes, &Device::flex()).unwrap();
        // A YOLO detector takes RGB / 255.
        let preset = match model.detector() {
            Some(_) => preprocess::Preset::Raw01,
            None => preprocess::Preset::Imagenet,
        };
        let options = ExplainerOptions {
            batch: Some(2),
            preset,
            ..ExplainerOptions::default()
        };
        let explainer = Explainer::new(model, Vec::new(), options).unwrap();
        let prepared = explainer.prepare_fitted(zoo_photo()).unwrap();
        (explainer, prepared)
    };
    // Whether the head after the default layer is linear (then `H·A` is 0).
    for (file, linear_head) in [
        ("efficientnet_opset17.onnx", true),
        ("densenet_dynamo.onnx", true),
        ("mobilenet_v3_small_opset17.onnx", false),
        ("yolov8_opset17.onnx", false),
        // Its rank-5 `Concat` has had a reverse step (and so the Hessian-vector product's
        // way back) since the boxed detections' round; before, ShapleyCAM was refused there.
        ("yolov5_opset17.onnx", false),
    ] {
        let (explainer, prepared) = open(file);
        let top1 = explainer.resolve_targets(&prepared, &["top1"]).unwrap();
        let request = Request::new(top1, methods.clone(), 1);
        let maps = explainer
            .explain(&prepared, &request, &mut |_, _| {})
            .unwrap();
        assert_eq!(maps.len(), 2, "{file}: one map per method");
        let [gradcam, shapley] = [0, 1].map(|i| &maps[i].map.values);
        assert!(gradcam.iter().any(|&v| v > 0.0), "{file}");
        assert!(shapley.iter().all(|v| v.is_finite()), "{file}");
        if linear_head {
            assert_eq!(gradcam, shapley, "{file}");
        } else {
            assert!(rel_l2(shapley, gradcam) > 1e-4, "{file}");
        }
    }
    let (explainer, prepared) = open("vit_opset17.onnx");
    let request = Request::new(vec![0], vec![methods[1]], 1);
    let error = explainer
        .explain(&prepared, &request, &mut |_, _| {})
        .expect_err("a LayerNormalization has no second-order rule");
    assert_eq!(
        error.to_string(),
        "ShapleyCAM needs the Hessian-vector product through node `/blocks/blocks.1/norm2/LayerNormalization` (LayerNormalization), for which igcam has no second-order rule (it has them for convolutions, batch normalisation, average pooling, max pooling without ceil_mode, products with a constant matrix, arithmetic, reshapes, joins and resizes, ReLU, ReLU6, LeakyReLU, Sigmoid, SiLU, HardSigmoid, HardSwish and Softmax); explain a layer after it or pick another method"
    );
}
