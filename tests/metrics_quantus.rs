//! eval's Quantus-family metrics and statistics against the reference values of
//! tests/reference/make_metric_fixtures.py (Quantus 0.6 on the same maps, images, model and
//! perturbations; pytorch-grad-cam 1.5.7 for ROAD; scipy 1.17 for the Wilcoxon test and Holm's
//! correction).

mod common;

use burn::tensor::Device;
use igcam::metrics::perturbation::{feature_order, unit_trapezoid};
use igcam::metrics::stats::{holm, wilcoxon};
use igcam::metrics::{
    Confidence, FaithfulnessInput, Games, PixelBox, Road, bbox_accuracy, boxes_mask, complexity,
    ebpg, sparseness, top_k_intersection,
};
use igcam::onnx::OnnxModel;
use igcam::preprocess::{self, Baseline, Preset};
use serde_json::Value as Json;

fn floats(v: &Json) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn counts(v: &Json) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// `|got - want| <= 1e-4 |want|` for each explanation.
fn assert_each(metric: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{metric}: count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "{metric}, explanation {i}: igcam {g} vs Quantus {w} (relative {:.2e})",
            (g - w).abs() / w.abs()
        );
    }
}

struct Case {
    size: usize,
    images: Vec<Vec<f32>>,
    targets: Vec<usize>,
    maps: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
    fixture: Json,
}

fn case() -> Case {
    let fixture = common::json("metrics/quantus.json");
    let size = fixture["size"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(common::fixture("nets/vgg_tiny_input.png")).unwrap();
    let photo = preprocess::decode(&bytes).unwrap().to_rgb8();
    assert_eq!(photo.dimensions(), (size as u32, size as u32));
    let flipped = image::imageops::flip_horizontal(&photo);
    let images = fixture["flipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = if f.as_bool().unwrap() {
                &flipped
            } else {
                &photo
            };
            preprocess::normalise(p, Preset::Imagenet)
        })
        .collect();
    let maps = fixture["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| floats(m).into_iter().map(|v| v as f32).collect())
        .collect();
    let masks = fixture["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bs| {
            let boxes: Vec<PixelBox> = bs
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let c = counts(b);
                    PixelBox {
                        x0: c[0],
                        y0: c[1],
                        x1: c[2],
                        y1: c[3],
                    }
                })
                .collect();
            boxes_mask(&boxes, size, size)
        })
        .collect();
    Case {
        size,
        images,
        targets: counts(&fixture["targets"]),
        maps,
        masks,
        fixture,
    }
}

#[test]
fn map_metrics_equal_quantus() {
    let c = case();
    let want = |m: &str| floats(&c.fixture["metrics"][m]);
    let per = |f: &dyn Fn(usize) -> f64| (0..c.maps.len()).map(f).collect::<Vec<_>>();
    assert_each(
        "sparseness",
        &per(&|i| sparseness(&c.maps[i])),
        &want("sparseness"),
    );
    assert_each(
        "complexity",
        &per(&|i| complexity(&c.maps[i])),
        &want("complexity"),
    );
    assert_each(
        "top_k (k = 300)",
        &per(&|i| top_k_intersection(&c.maps[i], &c.masks[i], 300).unwrap()),
        &want("top_k"),
    );
    // Quantus's Relevance Mass and Rank Accuracy are eval's EBPG and Bbox accuracy.
    assert_each(
        "EBPG = RelevanceMassAccuracy",
        &per(&|i| ebpg(&c.maps[i], &c.masks[i])),
        &want("relevance_mass"),
    );
    assert_each(
        "Bbox = RelevanceRankAccuracy",
        &per(&|i| bbox_accuracy(&c.maps[i], &c.masks[i]).unwrap()),
        &want("relevance_rank"),
    );
}

#[test]
fn perturbation_games_equal_quantus() {
    let c = case();
    let device = Device::flex();
    let bytes = std::fs::read(common::fixture("metrics/faith_net.onnx")).unwrap();
    let model = OnnxModel::from_bytes(&bytes, &device).unwrap();
    let black = preprocess::baseline(Baseline::Black, Preset::Imagenet, [c.size, c.size]);
    let subsets: Vec<Vec<Vec<usize>>> = c.fixture["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|runs| runs.as_array().unwrap().iter().map(counts).collect())
        .collect();
    let (mut flips, mut regions, mut correlations) = (Vec::new(), Vec::new(), Vec::new());
    let (mut road, mut irof, mut road_accuracy) = (Vec::new(), Vec::new(), Vec::new());
    let road_bytes = std::fs::read(common::fixture("metrics/road_net.onnx")).unwrap();
    let road_model = OnnxModel::from_bytes(&road_bytes, &device).unwrap();
    for (i, runs) in subsets.into_iter().enumerate() {
        let input = FaithfulnessInput {
            model: &model,
            image: &c.images[i],
            black: &black,
            blurred: &c.images[i],
            size: [c.size, c.size],
            batch: 7,
            confidence: Confidence::Softmax,
        };
        let games = Games {
            flip_step: Some(c.fixture["pixel_flipping_step"].as_u64().unwrap() as usize),
            regions: Some((
                c.fixture["region_patch"].as_u64().unwrap() as usize,
                c.fixture["regions"].as_u64().unwrap() as usize,
            )),
            subsets: Some(runs),
            road: Some(Road {
                percentiles: igcam::metrics::road::PERCENTILES.to_vec(),
                morf: true,
                lerf: true,
                accuracy: Vec::new(),
                noise: 0.01,
                seed: 5,
            }),
            irof: Some(100),
        };
        let s = input
            .play(&[(&c.maps[i], c.targets[i])], &games)
            .unwrap()
            .remove(0);
        irof.push(s.irof.unwrap());
        // Quantus's ROAD, on road_net (whose top class moves as pixels are imputed).
        let on_road_net = FaithfulnessInput {
            model: &road_model,
            ..input
        };
        let quantus_road = Games {
            road: Some(Road {
                percentiles: Vec::new(),
                morf: false,
                lerf: false,
                accuracy: (1..100).step_by(2).map(f64::from).collect(),
                noise: 0.01,
                seed: 5,
            }),
            ..Default::default()
        };
        let r = on_road_net
            .play(&[(&c.maps[i], c.targets[i])], &quantus_road)
            .unwrap()
            .remove(0);
        road_accuracy.push(r.road_accuracy.unwrap());
        let curve = &r
            .curves
            .iter()
            .find(|(k, _)| *k == "road_accuracy")
            .unwrap()
            .1;
        assert_eq!(
            curve,
            &floats(&c.fixture["road_accuracy_curves"][i]),
            "road_accuracy, explanation {i}: still the top class per percentage"
        );
        flips.push(s.pixel_flipping.unwrap());
        regions.push(s.region_perturbation.unwrap());
        correlations.push(s.faithfulness_correlation.unwrap());
        road.push([s.road_morf.unwrap(), s.road_lerf.unwrap()]);
    }
    let want = |m: &str| floats(&c.fixture["metrics"][m]);
    assert_each("pixel_flipping", &flips, &want("pixel_flipping"));
    assert_each(
        "region_perturbation",
        &regions,
        &want("region_perturbation"),
    );
    assert_each(
        "faithfulness_correlation",
        &correlations,
        &want("faithfulness_correlation"),
    );
    let morf: Vec<f64> = road.iter().map(|r| r[0]).collect();
    let lerf: Vec<f64> = road.iter().map(|r| r[1]).collect();
    let combined: Vec<f64> = road.iter().map(|r| (r[1] - r[0]) / 2.0).collect();
    assert_each("road_morf (pytorch-grad-cam)", &morf, &want("road_morf"));
    assert_each("road_lerf (pytorch-grad-cam)", &lerf, &want("road_lerf"));
    assert_each(
        "road_combined (pytorch-grad-cam)",
        &combined,
        &want("road_combined"),
    );
    assert_each("irof", &irof, &want("irof"));
    assert_each(
        "road_accuracy (Quantus ROAD)",
        &road_accuracy,
        &want("road_accuracy"),
    );
    assert!(
        want("road_accuracy").iter().any(|&v| v > 0.0 && v < 1.0),
        "a curve that moves"
    );
    // The fixture is one that moves: the photo's confidence falls by a measurable amount.
    assert!(want("region_perturbation").iter().all(|v| v.abs() > 1e-3));
    // The order the games used, as the fixture gave it to Quantus.
    assert_eq!(feature_order(&[0.5, 0.75], 3)[..3], [1, 3, 5]);
    assert_eq!(unit_trapezoid(&[0.0, 1.0]), 0.5);
}

/// igcam's SLIC gives skimage's labels, pixel for pixel, on the fixture photo, its mirror image,
/// and a synthetic 160x224 image.
#[test]
fn slic_equals_skimage() {
    let c = case();
    let synthetic = {
        let blocks = igcam::cam::random::uniforms(31, 3 * 20 * 28, [0.0, 1.0]);
        let noise = igcam::cam::random::uniforms(32, 3 * 160 * 224, [0.0, 1.0]);
        let mut image = vec![0.0f32; 3 * 160 * 224];
        for (i, v) in image.iter_mut().enumerate() {
            let (ch, y, x) = (i / (160 * 224), i / 224 % 160, i % 224);
            *v = blocks[ch * 20 * 28 + y / 8 * 28 + x / 8] + 0.05f32 * noise[i];
        }
        image
    };
    for (name, image) in [
        ("photo", &c.images[0]),
        ("flipped", &c.images[2]),
        ("synthetic", &synthetic),
    ] {
        let want = &c.fixture["slic"][name];
        let shape = counts(&want["shape"]);
        let labels: Vec<usize> = want["runs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                let r = counts(r);
                std::iter::repeat_n(r[0], r[1])
            })
            .collect();
        let (got, n) = igcam::metrics::slic::slic(image, [shape[0], shape[1]], 100);
        assert_eq!(n, want["segments"].as_u64().unwrap() as usize, "{name}");
        let differ = got.iter().zip(&labels).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ,
            0,
            "{name}: {differ} of {} pixels differ",
            labels.len()
        );
    }
}

#[test]
fn wilcoxon_and_holm_equal_scipy() {
    let f = common::json("metrics/quantus.json");
    for (name, case) in f["wilcoxon"].as_object().unwrap() {
        let w = wilcoxon(&floats(&case["a"]), &floats(&case["b"])).unwrap();
        let (stat, p) = (
            case["statistic"].as_f64().unwrap(),
            case["p"].as_f64().unwrap(),
        );
        assert!(
            (w.statistic - stat).abs() <= 1e-9 * stat.abs().max(1.0),
            "{name}: statistic {} vs {stat}",
            w.statistic
        );
        assert!(
            (w.p - p).abs() <= 1e-9 * p,
            "{name}: p {} vs scipy {p}",
            w.p
        );
    }
    let adjusted = holm(&floats(&f["holm"]["p"]));
    let want = floats(&f["holm"]["adjusted"]);
    for (a, b) in adjusted.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "Holm {adjusted:?} vs {want:?}");
    }
}

/// Max-Sensitivity, Random Logit and MPRT against Quantus's classes with Grad-CAM (PyTorch) as
/// the explain_func, fed igcam's noise, other classes and randomised weights.
#[test]
fn redone_metrics_equal_quantus() {
    use igcam::cam::Method;
    use igcam::explainer::{Explainer, ExplainerOptions, Request};
    use igcam::onnx::external::NoExternalData;
    use igcam::reexplain::{Redo, RedoOptions, Scored, as_read, redo};

    let c = case();
    let r = &c.fixture["redo"];
    let bytes = std::fs::read(common::fixture("metrics/faith_net.onnx")).unwrap();
    let device = Device::default();
    let options = ExplainerOptions {
        layer: Some(r["layer"].as_str().unwrap().to_string()),
        ..Default::default()
    };
    let explainer = Explainer::new(
        OnnxModel::from_bytes(&bytes, &device).unwrap(),
        vec![],
        options,
    )
    .unwrap();
    let gradcam = Method::parse("gradcam").unwrap();
    let cascade = igcam::onnx::randomise::Cascade::new(&bytes, &NoExternalData).unwrap();
    let want_maps = r["maps"].as_array().unwrap();
    let settings = RedoOptions {
        ms_samples: r["ms_samples"].as_u64().unwrap() as usize,
        ms_radius: r["ms_radius"].as_f64().unwrap() as f32,
        random_logit: true,
        mprt_layers: Some(None),
        seed: r["seed"].as_u64().unwrap(),
    };
    let layers: Vec<String> = r["mprt_spearman"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let (mut ms, mut rl) = (Vec::new(), Vec::new());
    let (mut rho, mut ssim) = (vec![Vec::new(); 4], vec![Vec::new(); 4]);
    for (i, (image, &target)) in c.images.iter().zip(&c.targets).enumerate() {
        let request = Request::new(vec![target], vec![gradcam], 1);
        let prepared = explainer.prepare_normalised(image.clone()).unwrap();
        let maps = explainer
            .explain(&prepared, &request, &mut |_, _| {})
            .unwrap();
        let map = as_read(&maps[0].map, [c.size, c.size]);
        // igcam's Grad-CAM is PyTorch's.
        let want: Vec<f32> = floats(&want_maps[i]).iter().map(|&v| v as f32).collect();
        common::assert_close("Grad-CAM map", &map, &want, 1e-5);
        let scored = [Scored {
            label: &maps[0].label,
            target,
            map: &map,
        }];
        let again = Redo {
            request: &request,
            cascade: Some(&cascade),
            status: None,
        };
        let done = redo(&explainer, image, &scored, &settings, &again)
            .unwrap()
            .remove(0);
        ms.push(done.max_sensitivity.unwrap());
        rl.push(done.random_logit.unwrap());
        for (l, (p, s)) in done
            .mprt_spearman
            .unwrap()
            .into_iter()
            .zip(done.mprt_ssim.unwrap())
            .enumerate()
        {
            rho[l].push(p);
            ssim[l].push(s);
        }
    }
    assert_each("max_sensitivity", &ms, &floats(&r["max_sensitivity"]));
    assert_each("random_logit", &rl, &floats(&r["random_logit"]));
    // Quantus names the torch modules ("8": the head, down to "0"); igcam goes top down too.
    let top_down = ["8", "4", "2", "0"];
    assert_eq!(layers.len(), 4, "{layers:?}");
    for (l, name) in top_down.iter().enumerate() {
        assert_each(
            &format!("MPRT Spearman, layer {name}"),
            &rho[l],
            &floats(&r["mprt_spearman"][name]),
        );
        assert_each(
            &format!("MPRT SSIM, layer {name}"),
            &ssim[l],
            &floats(&r["mprt_ssim"][name]),
        );
    }
    // The per-explanation mean over the layers; Quantus 0.6's return_average_correlation also
    // averages in the original model's similarity (1): L igcam = (L + 1) Quantus - 1.
    for (name, per_layer, key) in [
        ("mprt", &rho, "mprt_spearman_quantus_average"),
        ("mprt_ssim", &ssim, "mprt_ssim_quantus_average"),
    ] {
        let quantus = floats(&r[key]);
        let ours: Vec<f64> = (0..quantus.len())
            .map(|i| {
                let layers: Vec<f64> = per_layer.iter().map(|l| l[i]).collect();
                igcam::metrics::randomisation::mean_over_layers(&layers)
            })
            .collect();
        // Absolute: the means of values around 0 are small, and the relation scales Quantus's
        // rounding by 5/4.
        for (i, (o, q)) in ours.iter().zip(&quantus).enumerate() {
            let from_quantus = (5.0 * q - 1.0) / 4.0;
            assert!(
                (o - from_quantus).abs() < 1e-5,
                "{name}, explanation {i}: igcam {o} vs Quantus's average {q} -> {from_quantus}"
            );
        }
    }
    // The sanity check: the original map's similarity to itself is 1; with the head randomised
    // it has already fallen far, and it stays low as more layers are randomised.
    for (l, layer) in rho.iter().enumerate() {
        let mean_abs = layer.iter().map(|v| v.abs()).sum::<f64>() / layer.len() as f64;
        assert!(mean_abs < 0.5, "layer {l}: mean |rho| {mean_abs}");
    }
}
