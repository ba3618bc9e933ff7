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

/// On a batch that fills the threads, EfficientNet-Lite0's inverted bottlenecks (expansion,
/// depthwise, projection) run as one kernel each (`kernels::bottleneck`, a strip of rows at a
/// time): the profile names the chained groups; the photo's logits still equal PyTorch's, and
/// each image of the batch (the photo scaled by 1, 0.9, 0.8, ...) its logits alone (a batch of
/// one runs the three convolutions where there are several threads).
#[test]
fn efficientnet_lite0_bottlenecks_as_one_kernel_match_pytorch() {
    let device = Device::flex();
    let model = common::load("efficientnet_lite0", &device);
    let (x, _) = common::inputs("efficientnet_lite0", &model, &device);
    let batch = rayon::current_num_threads().max(2);
    let images: Vec<_> = (0..batch)
        .map(|b| x.clone().mul_scalar(1.0 - 0.1 * b as f32))
        .collect();
    fn now_ms() -> f64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1e3
    }
    model.start_profile(now_ms);
    let logits = model
        .host_logits(burn::tensor::Tensor::cat(images.clone(), 0))
        .unwrap();
    let profile = model.finish_profile();
    for chained in [
        "Pad+Conv+Clip > Conv",
        "Conv+Clip > Pad+Conv+Clip > Conv",
        "Conv+Clip > Pad+Conv+Clip > Conv+Add",
    ] {
        let runs = profile.ops.get(chained).map_or(0, |e| e.calls);
        assert!(runs > 0, "no `{chained}` in {:?}", profile.ops.keys());
    }
    let want = common::array(&common::json("nets/efficientnet_lite0.json")["logits"]).0;
    assert_eq!(logits.len(), batch * want.len());
    common::assert_close("the photo's logits", &logits[..want.len()], &want, 1e-4);
    for (b, got) in logits.chunks_exact(want.len()).enumerate() {
        let alone = model.host_logits(images[b].clone()).unwrap();
        common::assert_close(&format!("image {b}'s logits"), got, &alone, 1e-5);
        if b > 0 {
            assert_ne!(got, &logits[..want.len()], "image {b} is not the photo");
        }
    }
}

/// Every CAM method of the table against pytorch-grad-cam's own code (its classes run on the
/// PyTorch modules in float64 by tests/reference/make_method_fixtures.py), at the default layer
/// and, on the ResNet and the SiLU net, an earlier block where the methods' maps differ
/// (ShapleyCAM's Hessian term is zero on the ReLU nets and at any layer followed by the pooling
/// and the linear head alone, not at the SiLU net's third block); eigen- and aug-smoothing, and
/// several layers at once, too.
#[test]
fn every_cam_method_matches_pytorch_grad_cam() {
    let mut several = 0;
    for net in [
        "resnet_tiny",
        "vgg_tiny",
        "efficientnet_lite0",
        "swish_tiny",
    ] {
        common::check_against_library(net, &Device::flex(), 1e-4);
        several += common::check_several_layers(net, &Device::flex(), 1e-4);
    }
    assert!(several > 0, "no fixture has several layers");
}

#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; the CLI still offers it
fn ndarray_backend_agrees_on_resnet_tiny() {
    common::check_net("resnet_tiny", &Device::ndarray(), 1e-4, 1e-4);
}

/// One request for every method × the top-5 classes gives, map for map, what separate
/// single-method, single-target requests give (relative L2 <= 1e-5): the shared backbone pass
/// changes no number. Checked plain and with `integrate` (every CAM method integrated).
#[test]
fn one_request_for_all_targets_and_methods_equals_separate_runs() {
    use igcam::Request;
    use igcam::cam::Method;
    let (explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let targets = explainer.resolve_targets(&prepared, &["top5"]).unwrap();
    assert_eq!(targets.len(), 5);
    let ranked: Vec<usize> = prepared.top(5).iter().map(|p| p.index).collect();
    assert_eq!(targets, ranked, "top5 is the five best classes, best first");
    let methods: Vec<Method> = Method::all().collect();
    for integrate in [false, true] {
        let mut request = Request::new(targets.clone(), methods.clone(), 7);
        request.integrate = integrate;
        let all = common::explain(&explainer, &prepared, &request);
        assert_eq!(all.len(), targets.len() * methods.len());
        let mut i = 0;
        for &t in &targets {
            for &m in &methods {
                let mut single = Request::new(vec![t], vec![m], 7);
                single.integrate = integrate;
                let one = common::explain(&explainer, &prepared, &single).remove(0);
                let e = &all[i];
                assert_eq!((e.target, e.method, &e.label), (t, m, &one.label));
                common::assert_close(
                    &format!("{} of class {t}", e.label),
                    &e.map.values,
                    &one.map.values,
                    1e-5,
                );
                i += 1;
            }
        }
    }
}

/// The host reverse pass (pixel IG's input gradient without autodiff) applies to every fixture
/// net and equals Burn's autodiff gradient on a batch of path points: to 1e-5 (relative L2),
/// and to 5e-4 through EfficientNet-Lite0's ReLU6 gates, where the two forward passes' rounding
/// flips a few gates (the host pass's IG map is the closer one to PyTorch's: 2.09e-3 against
/// autodiff's 2.30e-3, see above).
#[test]
fn host_input_gradient_equals_autodiff() {
    let device = Device::flex();
    for (net, tol) in [
        ("resnet_tiny", 1e-5),
        ("vgg_tiny", 1e-5),
        ("efficientnet_lite0", 5e-4),
    ] {
        let model = common::load(net, &device);
        let (x, b) = common::inputs(net, &model, &device);
        let points = common::path_points(&x, &b, &[0.3, 1.0]);
        let target = 7;
        let host = model
            .host_input_gradient(points.clone(), target)
            .unwrap()
            .unwrap_or_else(|| panic!("{net}: the host reverse pass applies"));
        let autodiff = common::autodiff_input_gradient(&model, points, target);
        assert_eq!(host.dims(), autodiff.dims(), "{net}: gradient shape");
        common::assert_close(
            &format!("{net} input gradient"),
            &common::host(host),
            &common::host(autodiff),
            tol,
        );
    }
}

/// The layer gradients of several targets from one forward pass through the head and a host
/// reverse pass each (the explainer's path on the CPU backend) apply to every fixture net and
/// equal Burn's autodiff, objective by objective, on a batch of path points (relative L2 <=
/// 1e-5).
#[test]
fn host_layer_gradients_equal_autodiff() {
    use igcam::onnx::objective::Objective;
    let device = Device::flex();
    for net in ["resnet_tiny", "vgg_tiny", "efficientnet_lite0"] {
        let model = common::load(net, &device);
        let layer = model.default_layer().unwrap();
        let (x, b) = common::inputs(net, &model, &device);
        let points = common::path_points(&x, &b, &[0.3, 1.0]);
        let (act, env) = model.forward_to(points, &layer).unwrap();
        // Three logits, and Finer-CAM's weighted difference (its seed on the host from the
        // derivative written out, under autodiff from Burn's softmax).
        let objectives = [
            Objective::Logit(7),
            Objective::Logit(3),
            Objective::Logit(0),
            Objective::Finer {
                class: 3,
                comparisons: vec![1, 5, 2],
                alpha: 0.8,
            },
        ];
        let host = model
            .host_layer_gradients(&layer, &act, &env, &objectives)
            .unwrap()
            .unwrap_or_else(|| panic!("{net}: the host reverse pass applies to the head"));
        assert_eq!(
            host.len(),
            objectives.len(),
            "{net}: one gradient per objective"
        );
        for (g, objective) in host.into_iter().zip(&objectives) {
            let autodiff = model.layer_gradient(&layer, &act, &env, objective).unwrap();
            assert_eq!(g.dims(), act.dims(), "{net}: gradient shape");
            common::assert_close(
                &format!("{net} layer gradient of {objective:?}"),
                &common::host(g),
                &common::host(autodiff),
                1e-5,
            );
        }
    }
}

/// Pixel IG's allowance against Captum's float64 maps: 3x the largest difference between
/// Captum's own float32 and float64 runs on this net, recorded in the fixture (max-pool
/// near-ties close to the black baseline break with the rounding).
fn ig_allowance(reference: &serde_json::Value) -> f64 {
    let own = reference["quadratures"]
        .as_object()
        .unwrap()
        .values()
        .map(|q| q["captum_float32_vs_float64"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let allowance = (3.0 * own).max(1e-4);
    assert!(
        allowance < 5e-3,
        "Captum's own float32 difference {own} is no yardstick"
    );
    allowance
}

/// IG and IG-CAM under each of Captum's quadratures against Captum's IntegratedGradients (its
/// `method`, with `return_convergence_delta`) and, for IG-CAM, pytorch-grad-cam's Grad-CAM at
/// Captum's points weighted by its step sizes (tests/reference/make_method_fixtures.py), in
/// float64. IG-CAM and the delta within 1e-4; pixel IG within 3x the largest difference between
/// Captum's own float32 and float64 runs (recorded in the fixture): near the black baseline the
/// max-pool's near-ties break with the rounding and move attribution between pixels (the sum,
/// and so the delta, stays).
#[test]
fn every_quadrature_matches_captum() {
    use igcam::Request;
    use igcam::cam::{Method, Quadrature};
    let reference = common::json("nets/resnet_tiny_captum.json");
    let (explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let target = reference["target"].as_u64().unwrap() as usize;
    let steps = reference["steps"].as_u64().unwrap() as usize;
    let quadratures = reference["quadratures"].as_object().unwrap();
    assert_eq!(
        quadratures.len(),
        Quadrature::ALL.len(),
        "one reference per quadrature"
    );
    let ig_tol = ig_allowance(&reference);
    for (name, want) in quadratures {
        let methods = vec![Method::igcam(), Method::parse("ig").unwrap()];
        let mut request = Request::new(vec![target], methods, steps);
        request.quadrature = Quadrature::parse(name).unwrap();
        let maps = common::explain(&explainer, &prepared, &request);
        let [igcam, ig] = maps.as_slice() else {
            panic!("{name}: two maps expected");
        };
        common::assert_matches(
            &format!("IG-CAM {name}"),
            &igcam.map.values,
            &want["igcam"],
            1e-4,
        );
        common::assert_matches(&format!("IG {name}"), &ig.map.values, &want["ig"], ig_tol);
        assert_eq!(
            igcam.convergence_delta, None,
            "{name}: a CAM map has no delta"
        );
        let delta = ig
            .convergence_delta
            .expect("IG reports its convergence delta");
        let captum = want["convergence_delta"].as_f64().unwrap();
        assert!(
            (delta - captum).abs() < 1e-4,
            "{name}: convergence delta {delta} against Captum's {captum}"
        );
    }
}

/// Captum's NoiseTunnel (smoothgrad, smoothgrad_sq, vargrad) around IntegratedGradients and
/// LayerGradCam, its noise replaced by igcam's generator for the same seed
/// (tests/reference/make_method_fixtures.py): Grad-CAM within 1e-4, IG within the quadrature
/// test's allowance for max-pool near-ties.
#[test]
fn noise_tunnel_matches_captum() {
    use igcam::Request;
    use igcam::cam::Method;
    use igcam::cam::noise_tunnel::{NoiseKind, NoiseTunnel};
    let reference = common::json("nets/resnet_tiny_captum.json");
    let tunnel = &reference["noise_tunnel"];
    let (explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let target = reference["target"].as_u64().unwrap() as usize;
    let ig_tol = ig_allowance(&reference);
    let kinds = [
        ("smoothgrad", NoiseKind::SmoothGrad),
        ("smoothgrad_sq", NoiseKind::SmoothGradSq),
        ("vargrad", NoiseKind::VarGrad),
    ];
    for (name, kind) in kinds {
        let want = &tunnel["kinds"][name];
        let methods = vec![
            Method::parse("gradcam").unwrap(),
            Method::parse("ig").unwrap(),
        ];
        let mut request = Request::new(
            vec![target],
            methods,
            tunnel["steps"].as_u64().unwrap() as usize,
        );
        request.noise_tunnel = Some(NoiseTunnel {
            kind,
            samples: tunnel["samples"].as_u64().unwrap() as usize,
            stdev: tunnel["stdev"].as_f64().unwrap() as f32,
        });
        request.seed = tunnel["seed"].as_u64().unwrap();
        let maps = common::explain(&explainer, &prepared, &request);
        let [cam, ig] = maps.as_slice() else {
            panic!("{name}: two maps expected");
        };
        assert_eq!(cam.label, format!("gradcam+{name}"));
        assert_eq!(ig.label, format!("ig+{name}"));
        assert_eq!(
            ig.convergence_delta, None,
            "{name}: no delta for a combined map"
        );
        common::assert_matches(
            &format!("Grad-CAM {name}"),
            &cam.map.values,
            &want["gradcam"],
            1e-4,
        );
        common::assert_matches(&format!("IG {name}"), &ig.map.values, &want["ig"], ig_tol);
    }
}

/// How the request's options combine: eigen-smoothing leaves FEM (which ignores it in
/// pytorch-grad-cam) and the always-projecting methods as they are; a noise tunnel around
/// aug-smoothed pixel IG keeps the input's shape; the stepper refuses what only `explain` runs.
#[test]
fn options_combine_as_documented() {
    use igcam::Request;
    use igcam::cam::Method;
    use igcam::cam::noise_tunnel::{NoiseKind, NoiseTunnel};
    let (explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let target = prepared.ranked[0].index;
    let methods = |names: &[&str]| {
        names
            .iter()
            .map(|n| Method::parse(n).unwrap())
            .collect::<Vec<_>>()
    };

    let plain = Request::new(vec![target], methods(&["fem", "eigencam", "gradcam"]), 1);
    let smooth = Request {
        eigen_smooth: true,
        ..plain.clone()
    };
    let (a, b) = (
        common::explain(&explainer, &prepared, &plain),
        common::explain(&explainer, &prepared, &smooth),
    );
    let labels: Vec<&str> = b.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, ["fem", "eigencam", "gradcam+eigen-smooth"]);
    assert_eq!(a[0].map, b[0].map, "FEM ignores eigen-smoothing");
    assert_eq!(a[1].map, b[1].map, "Eigen-CAM projects either way");
    assert_ne!(a[2].map, b[2].map, "Grad-CAM is smoothed");

    let mut both = Request::new(vec![target], methods(&["ig", "gradcam"]), 2);
    both.aug_smooth = true;
    both.noise_tunnel = Some(NoiseTunnel {
        kind: NoiseKind::SmoothGradSq,
        samples: 2,
        stdev: 0.1,
    });
    let maps = common::explain(&explainer, &prepared, &both);
    let size = explainer.model().input_size();
    for e in &maps {
        assert_eq!(
            [e.map.height, e.map.width],
            size,
            "{}: the input's shape",
            e.label
        );
        assert!(e.map.values.iter().all(|v| v.is_finite()), "{}", e.label);
    }
    assert_eq!(maps[0].label, "ig+aug-smooth+smoothgrad_sq");

    let mut layers = Request::new(vec![target], methods(&["gradcam"]), 1);
    layers.layers = explainer
        .model()
        .layers()
        .iter()
        .rev()
        .take(2)
        .map(|l| l.name.clone())
        .collect();
    let err = explainer.start(&prepared, &both).err().expect("refused");
    assert_eq!(
        err.to_string(),
        "invalid option: aug-smoothing and a noise tunnel run through Explainer::explain, not the stepper"
    );
    // Several layers step like one (the page's detectors): the maps read back and averaged by
    // `Finished::layer_average` are `explain`'s, at the input's resolution.
    let mut stepper = explainer.start(&prepared, &layers).unwrap();
    while !stepper.is_done() {
        stepper.step().unwrap();
    }
    let finished = stepper.finish().unwrap();
    assert_eq!(
        finished.maps.len(),
        2,
        "one map per layer before the average"
    );
    let average = finished.layer_average.clone().expect("several layers");
    let read: Vec<_> = finished
        .maps
        .into_iter()
        .map(|m| m.try_map(igcam::cam::CamMap::from_tensor).unwrap())
        .collect();
    let stepped = average.apply(read);
    let explained = explainer
        .explain(&prepared, &layers, &mut |_, _| {})
        .unwrap();
    assert_eq!(stepped.len(), 1);
    assert_eq!(stepped[0].map, explained[0].map);
    assert_eq!(stepped[0].layer, layers.layers.join(","));
    assert_eq!(
        [stepped[0].map.height, stepped[0].map.width],
        explainer.model().input_size()
    );
}

/// The entry points the Python binding uses: an input already normalised gives the maps its
/// photo gives (and the photo back for overlays); a progress callback that fails stops the
/// request after the chunk it was told of, and its error comes back; a baseline set later
/// applies to the inputs prepared afterwards.
#[test]
fn normalised_inputs_stopping_and_the_baseline() {
    use igcam::Request;
    use igcam::cam::Method;
    use igcam::preprocess::{self, Baseline};
    let (mut explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let target = prepared.ranked[0].index;
    let request = Request::new(
        vec![target],
        vec![
            Method::parse("igcam").unwrap(),
            Method::parse("gradcam").unwrap(),
        ],
        8,
    );
    let chw = preprocess::normalise(&prepared.photo, explainer.options().preset);
    let from_floats = explainer.prepare_normalised(chw.clone()).unwrap();
    assert_eq!(from_floats.photo, prepared.photo, "the photo comes back");
    assert_eq!(from_floats.logits, prepared.logits);
    let (a, b) = (
        common::explain(&explainer, &prepared, &request),
        common::explain(&explainer, &from_floats, &request),
    );
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.map, b.map, "{}", a.label);
    }
    let short = explainer
        .prepare_normalised(chw[1..].to_vec())
        .err()
        .unwrap();
    let size = explainer.model().input_size();
    assert_eq!(
        short.to_string(),
        format!(
            "invalid option: the input holds {} values but the model takes 3x{}x{} = {}",
            chw.len() - 1,
            size[0],
            size[1],
            chw.len()
        )
    );
    let mut nan = chw.clone();
    nan[7] = f32::NAN;
    assert_eq!(
        explainer.prepare_normalised(nan).err().unwrap().to_string(),
        "invalid option: the input holds a value that is not finite (NaN or infinity)"
    );

    let mut chunks = Vec::new();
    let mut one_chunk = request.clone();
    one_chunk.batch = Some(2);
    let stopped = explainer.explain_or_stop(&prepared, &one_chunk, &mut |done, total| {
        chunks.push((done, total));
        Err(igcam::Error::Stopped)
    });
    assert!(matches!(stopped, Err(igcam::Error::Stopped)));
    assert_eq!(chunks.len(), 1, "stopped after the first report");

    explainer.set_baseline(Baseline::Zero);
    let zero = explainer.prepare_normalised(chw).unwrap();
    assert!(
        common::host(zero.baseline().clone())
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        common::host(prepared.baseline().clone())
            .iter()
            .any(|&v| v != 0.0)
    );
}

/// Several layers from one pass (one forward through both layers, one reverse pass handing out
/// both layers' gradients) give, map for map, what one request per layer gives, combined as
/// pytorch-grad-cam combines several `target_layers`: every CAM method (the head re-runs of
/// Ablation-CAM from each layer too), plain and integrated, for two targets; pixel IG and
/// FullGrad, which have no layer, as they are.
#[test]
fn several_layers_from_one_pass_equal_one_request_per_layer() {
    use igcam::Request;
    use igcam::cam::{Method, scaled};
    let (explainer, prepared) = common::explainer("resnet_tiny", &Device::flex());
    let targets: Vec<usize> = prepared.top(2).iter().map(|p| p.index).collect();
    let layers = [
        "/layer3/out_relu/Relu_output_0".to_string(),
        "/layer4/out_relu/Relu_output_0".to_string(),
    ];
    let methods: Vec<Method> = Method::all().collect();
    let size = explainer.model().input_size();
    for integrate in [false, true] {
        let mut request = Request::new(targets.clone(), methods.clone(), 3);
        request.integrate = integrate;
        request.layers = layers.to_vec();
        let together = common::explain(&explainer, &prepared, &request);
        assert_eq!(together.len(), targets.len() * methods.len());
        let alone: Vec<Vec<_>> = layers
            .iter()
            .map(|l| {
                let mut one = Request::new(targets.clone(), methods.clone(), 3);
                one.integrate = integrate;
                one.layer = Some(l.clone());
                common::explain(&explainer, &prepared, &one)
            })
            .collect();
        for (i, e) in together.iter().enumerate() {
            let want = if e.method.explains_input() {
                alone[0][i].map.clone()
            } else {
                assert_eq!(e.layer, layers.join(","), "{}", e.label);
                let maps: Vec<_> = alone
                    .iter()
                    .map(|r| scaled::scaled_to(&r[i].map, size))
                    .collect();
                let mut mean = scaled::mean(&maps);
                mean.values = scaled::scale(&mean.values);
                mean
            };
            assert_eq!((e.map.height, e.map.width), (want.height, want.width));
            common::assert_close(
                &format!("{} target {} (integrate {integrate})", e.label, e.target),
                &e.map.values,
                &want.values,
                1e-5,
            );
        }
    }
}

/// ShapleyCAM's Hessian-vector product `H·A` at a small classifier's first convolution, through
/// SiLU, max pooling, batch normalisation, `Pad`, a convolution, HardSwish, `ReduceMean`,
/// HardSigmoid, a broadcast product, Softmax, `Transpose`, `Slice`, `Split`, `Concat`,
/// LeakyReLU, average pooling, arithmetic, ReLU6 and `Gemm` (tests/reference/make_hessian_ops.py,
/// both exporters): every logit's product equals PyTorch's double backward (float64; relative
/// L2 <= 1e-4), and is far from zero.
#[test]
fn hessian_vector_products_equal_pytorchs_double_backward() {
    use igcam::onnx::objective::Objective;
    let device = Device::flex();
    let reference = common::json("grad/hessian_ops.json");
    let (x, shape) = common::array(&reference["x"]);
    for tag in ["opset17", "dynamo"] {
        let bytes =
            std::fs::read(common::fixture(&format!("grad/hessian_ops_{tag}.onnx"))).unwrap();
        let model = igcam::onnx::OnnxModel::from_bytes(&bytes, &device).unwrap();
        let layer = reference["layers"][tag].as_str().unwrap();
        let input = common::tensor(x.clone(), &shape, &device);
        let (activations, env) = model.forward_to(input, layer).unwrap();
        let products = reference["products"].as_array().unwrap();
        assert_eq!(products.len(), 5, "{tag}: one product per logit");
        for (target, want) in products.iter().enumerate() {
            let (want, _) = common::array(want);
            let got = model
                .layer_hessian_product(layer, &activations, &env, &Objective::Logit(target))
                .unwrap();
            let got = common::host(got);
            let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(norm > 0.1, "{tag}: logit {target}: |H·A| {norm}");
            let error = common::rel_l2(&got, &want);
            assert!(
                error <= 1e-4,
                "{tag}: logit {target}: relative L2 {error:.2e}"
            );
        }
    }
}

/// The host reverse pass through `Softmax`, `Transpose`, `Slice`, `Split` and `Concat` (a
/// YOLO head's DFL and output split; `tests/reference/make_gradient_ops.py`, legacy and dynamo
/// exports): it applies, and every logit's input gradient equals PyTorch's (float64;
/// relative L2 <= 1e-5).
#[test]
fn host_gradients_through_softmax_transpose_slice_and_split_equal_pytorchs() {
    let device = Device::flex();
    let reference = common::json("grad/shape_ops.json");
    let (x, shape) = common::array(&reference["x"]);
    for tag in ["opset17", "dynamo"] {
        let bytes = std::fs::read(common::fixture(&format!("grad/shape_ops_{tag}.onnx"))).unwrap();
        let model = igcam::onnx::OnnxModel::from_bytes(&bytes, &device).unwrap();
        assert_eq!(model.num_classes(), 5, "{tag}");
        for (target, want) in reference["gradients"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let input = common::tensor(x.clone(), &shape, &device);
            let got = model
                .host_input_gradient(input, target)
                .unwrap()
                .unwrap_or_else(|| panic!("{tag}: the host pass applies"));
            let error = common::rel_l2(&common::host(got), &common::array(want).0);
            assert!(
                error <= 1e-5,
                "{tag}: logit {target}: relative L2 {error:.2e}"
            );
        }
    }
}
