//! Shared helpers for the integration tests: fixtures, error measures and the reference checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use igcam::cam::Method;
use igcam::onnx::OnnxModel;
use igcam::preprocess::{self, Baseline, Preset};
use igcam::{Explainer, ExplainerOptions, Explanation, Prepared, Request};
use serde_json::Value as Json;

/// How much longer than on an idle machine a functional test's time limit may be:
/// `IGCAM_TIME_SCALE` (a positive integer, default 1). Speed is measured by the benchmarks;
/// these limits only catch a run that hangs.
pub fn time_scale() -> u32 {
    std::env::var("IGCAM_TIME_SCALE")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1)
}

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Parses a fixture JSON file.
pub fn json(rel: &str) -> Json {
    serde_json::from_slice(&std::fs::read(fixture(rel)).expect("fixture exists"))
        .expect("fixture is JSON")
}

/// `{"shape": [...], "values": [...]}` to (values, shape).
pub fn array(v: &Json) -> (Vec<f32>, Vec<usize>) {
    let values = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (values, shape)
}

/// Relative L2 error `||a - b|| / ||b||`.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Asserts `rel_l2(got, want) <= tol` with a readable message.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_l2(got, want);
    assert!(e <= tol, "{what}: relative L2 error {e:.3e} > {tol:.0e}");
}

/// A tensor's values on the host.
pub fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// The points `b + a (x - b)` of the straight path for each `a` of `alphas`, as one batch.
pub fn path_points(x: &Tensor<4>, b: &Tensor<4>, alphas: &[f32]) -> Tensor<4> {
    let points = alphas
        .iter()
        .map(|&a| b.clone().add(x.clone().sub(b.clone()).mul_scalar(a)))
        .collect();
    Tensor::cat(points, 0)
}

/// The gradient of the summed `target` logits with respect to the images `x`, by Burn's
/// autodiff.
pub fn autodiff_input_gradient(model: &OnnxModel, x: Tensor<4>, target: usize) -> Tensor<4> {
    let leaf = x.autodiff().require_grad();
    let logits = model.forward(leaf.clone()).unwrap();
    let grads = logits.narrow(1, target, 1).sum().backward();
    leaf.grad(&grads).expect("the logits depend on the input")
}

/// The fixture's input image and black baseline as tensors.
pub fn inputs(net: &str, model: &OnnxModel, device: &Device) -> (Tensor<4>, Tensor<4>) {
    photo_inputs(&format!("nets/{net}_input.png"), model, device)
}

/// A fixture photo (path under `tests/fixtures`), fitted to `model`'s input, and the black
/// baseline, as tensors.
pub fn photo_inputs(rel: &str, model: &OnnxModel, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let bytes = std::fs::read(fixture(rel)).unwrap();
    let size = model.input_size();
    let photo = preprocess::fit(&preprocess::decode(&bytes).unwrap(), size, true);
    igcam::preprocess::input_pair(&photo, Preset::Imagenet, Baseline::Black, device)
}

/// Loads a net fixture's model: the committed tiny nets, or the embedded EfficientNet-Lite0.
pub fn load(net: &str, device: &Device) -> OnnxModel {
    let path = if net == "efficientnet_lite0" {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet-lite0.onnx")
    } else {
        fixture(&format!("nets/{net}.onnx"))
    };
    OnnxModel::from_bytes(&std::fs::read(path).unwrap(), device).unwrap()
}

/// The explainer of a net fixture (default layer, chunks of 3 path points) and its prepared
/// input photo.
pub fn explainer(net: &str, device: &Device) -> (Explainer, Prepared) {
    let options = ExplainerOptions {
        batch: Some(3),
        ..ExplainerOptions::default()
    };
    let explainer = Explainer::new(load(net, device), Vec::new(), options).unwrap();
    let bytes = std::fs::read(fixture(&format!("nets/{net}_input.png"))).unwrap();
    let photo = preprocess::decode(&bytes).unwrap().to_rgb8();
    let prepared = explainer.prepare_fitted(photo).unwrap();
    (explainer, prepared)
}

/// Runs one request, checking that progress ends at `(total, total)`.
pub fn explain(explainer: &Explainer, prepared: &Prepared, request: &Request) -> Vec<Explanation> {
    let mut calls = Vec::new();
    let maps = explainer
        .explain(prepared, request, &mut |done, total| {
            calls.push((done, total))
        })
        .unwrap();
    let (done, total) = calls.last().copied().expect("at least one progress call");
    assert_eq!(done, total, "progress ends complete");
    maps
}

/// Checks logits, the default layer, activations, gradients and every method's map of one
/// net fixture against the PyTorch reference, within `tol` relative L2 error (`ig_tol` for
/// pixel-level Integrated Gradients).
pub fn check_net(net: &str, device: &Device, tol: f64, ig_tol: f64) {
    let reference = json(&format!("nets/{net}.json"));
    let (explainer, prepared) = explainer(net, device);
    let model = explainer.model();
    let (x, _) = inputs(net, model, device);
    let layer = reference["layer"].as_str().unwrap();
    assert_eq!(
        model.default_layer().as_deref(),
        Some(layer),
        "{net}: default layer"
    );
    assert_eq!(explainer.layer(), layer, "{net}: explainer layer");

    let logits = model.host_logits(x.clone()).unwrap();
    assert_close(
        &format!("{net} logits"),
        &logits,
        &array(&reference["logits"]).0,
        tol,
    );
    assert_close(
        &format!("{net} prepared logits"),
        &prepared.logits,
        &array(&reference["logits"]).0,
        tol,
    );
    let target = reference["target"].as_u64().unwrap() as usize;
    assert_eq!(
        igcam::labels::resolve_target("top1", &logits, &[]).unwrap(),
        target,
        "{net}: top-1"
    );
    assert_eq!(prepared.ranked[0].index, target, "{net}: prepared top-1");

    if let Some(want_a) = reference.get("activations") {
        let (act, env) = model.forward_to(x.clone(), layer).unwrap();
        let (want_a, shape) = array(want_a);
        assert_eq!(act.dims()[1..].to_vec(), shape, "{net}: activation shape");
        assert_close(
            &format!("{net} activations"),
            &host(act.clone()),
            &want_a,
            tol,
        );
        // By the explainer's door (the host reverse pass on the CPU backend) and by autodiff.
        let mut by_door = model.layer_gradients(layer, &act, &env, &[target]).unwrap();
        assert_eq!(by_door.len(), 1, "{net}: one gradient per target");
        assert_close(
            &format!("{net} gradients (layer_gradients)"),
            &host(by_door.remove(0)),
            &array(&reference["gradients"]).0,
            tol,
        );
        let leaf = act.autodiff().require_grad();
        let logits = model.forward_from(env, layer, leaf.clone()).unwrap();
        let grads = logits.narrow(1, target, 1).sum().backward();
        let g = leaf.grad(&grads).unwrap();
        assert_close(
            &format!("{net} gradients"),
            &host(g),
            &array(&reference["gradients"]).0,
            tol,
        );
    }

    let steps = reference["steps"].as_u64().unwrap() as usize;
    // Every method of the table, and one integrated variant: each needs its reference map.
    let pp = Method::parse("gradcampp").unwrap();
    let library = json(&format!("nets/{net}_gradcam.json"));
    let cases = Method::all().map(|m| (m, false)).chain([(pp, true)]);
    for (method, integrate) in cases {
        let name = method.label(integrate);
        let name = name.as_str();
        if reference["maps"].get(name).is_none() {
            // Checked against pytorch-grad-cam itself by `check_against_library`.
            assert!(
                library["layers"][layer]["maps"].get(name).is_some() || library.get(name).is_some(),
                "{net}: no fixture has a `{name}` map; add the method to tests/reference/make_fixtures.py or make_method_fixtures.py"
            );
            continue;
        }
        let mut request = Request::new(vec![target], vec![method], steps);
        request.integrate = integrate;
        let maps = explain(&explainer, &prepared, &request);
        let [e] = maps.as_slice() else {
            panic!("{net} {name}: one map expected, got {}", maps.len());
        };
        assert_eq!(e.label, name, "{net} {name}: label");
        assert_eq!(e.target, target, "{net} {name}: target");
        assert_eq!(
            e.steps,
            if method.integrates(integrate) {
                steps
            } else {
                1
            },
            "{net} {name}: steps"
        );
        assert_eq!(
            e.layer,
            if method.explains_input() {
                "input"
            } else {
                layer
            },
            "{net} {name}: layer"
        );
        let (want, shape) = array(&reference["maps"][name]);
        assert_eq!(
            vec![e.map.height, e.map.width],
            shape,
            "{net} {name}: map shape"
        );
        let limit = if method.is_pixel() { ig_tol } else { tol };
        assert_close(&format!("{net} {name}"), &e.map.values, &want, limit);
    }
}

/// Checks every map of `nets/<net>_gradcam.json` (pytorch-grad-cam's own code: each layer, each
/// method, the eigen-smoothed `<method>+eigen-smooth` and aug-smoothed `<method>+aug-smooth`
/// maps) within `tol` relative L2 error, one request per layer and kind for all of them.
pub fn check_against_library(net: &str, device: &Device, tol: f64) {
    let library = json(&format!("nets/{net}_gradcam.json"));
    let (explainer, prepared) = explainer(net, device);
    let target = library["target"].as_u64().unwrap() as usize;
    let layers = library["layers"].as_object().unwrap();
    assert!(!layers.is_empty(), "{net}: no layer in the fixture");
    // FullGrad has no layer: one map at the input's resolution.
    let fullgrad = Method::parse("fullgrad").unwrap();
    let e = explain(
        &explainer,
        &prepared,
        &Request::new(vec![target], vec![fullgrad], 1),
    )
    .remove(0);
    assert_eq!((e.label.as_str(), e.layer.as_str()), ("fullgrad", "input"));
    let (want, shape) = array(&library["fullgrad"]);
    assert_eq!(
        vec![e.map.height, e.map.width],
        shape,
        "{net} fullgrad: shape"
    );
    assert_close(&format!("{net} fullgrad"), &e.map.values, &want, tol);
    // Eigen-smoothed: the sign-corrected projection (igcam's rule and pytorch-grad-cam's).
    let mut smooth = Request::new(vec![target], vec![fullgrad], 1);
    smooth.eigen_smooth = true;
    let e = explain(&explainer, &prepared, &smooth).remove(0);
    assert_eq!(e.label, "fullgrad+eigen-smooth");
    let (want, _) = array(&library["fullgrad+eigen-smooth"]);
    assert_close(
        &format!("{net} fullgrad+eigen-smooth"),
        &e.map.values,
        &want,
        tol,
    );
    for (layer, entry) in layers {
        let maps = entry["maps"].as_object().unwrap();
        for suffix in ["", "+eigen-smooth", "+aug-smooth"] {
            let wanted: Vec<(&String, Method)> = maps
                .keys()
                .filter(|k| {
                    let plain = !k.contains('+');
                    if suffix.is_empty() {
                        plain
                    } else {
                        k.ends_with(suffix)
                    }
                })
                .map(|k| (k, Method::parse(k.trim_end_matches(suffix)).unwrap()))
                .collect();
            if wanted.is_empty() {
                assert_ne!(suffix, "", "{net} {layer}: no plain map");
                continue;
            }
            let mut request =
                Request::new(vec![target], wanted.iter().map(|(_, m)| *m).collect(), 1);
            request.layer = Some(layer.clone());
            request.eigen_smooth = suffix == "+eigen-smooth";
            request.aug_smooth = suffix == "+aug-smooth";
            let got = explain(&explainer, &prepared, &request);
            assert_eq!(got.len(), wanted.len(), "{net} {layer}: one map per method");
            for ((name, method), e) in wanted.iter().zip(&got) {
                assert_eq!(e.method, *method, "{net} {layer} {name}: order");
                assert_eq!(e.label, name.as_str(), "{net} {layer} {name}: label");
                assert_eq!(e.layer, *layer, "{net} {name}: layer");
                let (want, shape) = array(&maps[name.as_str()]);
                assert_eq!(
                    vec![e.map.height, e.map.width],
                    shape,
                    "{net} {layer} {name}: shape"
                );
                assert_close(&format!("{net} {layer} {name}"), &e.map.values, &want, tol);
            }
        }
    }
}

/// Checks the fixture's `several_layers` maps, where it has them: pytorch-grad-cam with every
/// listed layer as its `target_layers`, against one request on all of them (`Request::layers`).
pub fn check_several_layers(net: &str, device: &Device, tol: f64) -> usize {
    let library = json(&format!("nets/{net}_gradcam.json"));
    let Some(several) = library.get("several_layers") else {
        return 0;
    };
    let (explainer, prepared) = explainer(net, device);
    let layers: Vec<String> = several["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let maps = several["maps"].as_object().unwrap();
    let methods: Vec<Method> = maps.keys().map(|k| Method::parse(k).unwrap()).collect();
    let target = library["target"].as_u64().unwrap() as usize;
    let mut request = Request::new(vec![target], methods, 1);
    request.layers = layers.clone();
    let got = explain(&explainer, &prepared, &request);
    assert_eq!(got.len(), maps.len(), "{net}: one map per method");
    for (e, (name, want)) in got.iter().zip(maps) {
        assert_eq!(e.method.name(), name, "{net} several layers: order");
        assert_eq!(e.layer, layers.join(","), "{net} several layers: layer");
        assert_matches(
            &format!("{net} {name} on {layers:?}"),
            &e.map.values,
            want,
            tol,
        );
    }
    maps.len()
}

/// [`assert_close`] against a fixture array (`{"shape", "values"}`).
pub fn assert_matches(what: &str, got: &[f32], want: &Json, tol: f64) {
    assert_close(what, got, &array(want).0, tol);
}

/// Builds a tensor from host values.
pub fn tensor(values: Vec<f32>, shape: &[usize], device: &Device) -> Tensor<4> {
    let mut dims = [1usize; 4];
    dims[4 - shape.len()..].copy_from_slice(shape);
    Tensor::<4>::from_data(TensorData::new(values, dims), device)
}
