//! The `igcam-wgpu` binary: the default run, the JSON schema, layers, and every bad input
//! (one-line error, exit code 2, no panic).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{array, assert_close, fixture, json};
use serde_json::Value as Json;

fn igcam(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_igcam-wgpu"))
        .args(args)
        .current_dir(dir)
        .env("IGCAM_TEST", "1")
        .output()
        .expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs with bad input and checks: exit code 2, a single `error:` line naming `needle`.
fn refuses(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = igcam(dir.path(), args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("backend:") && !l.starts_with("notice:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "args {args:?}: expected one error line, got {stderr:?}"
    );
    assert!(lines[0].starts_with("error: "), "args {args:?}: {stderr}");
    assert!(
        lines[0].contains(needle),
        "args {args:?}: `{needle}` not in {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The raw map of one `--json` record.
fn cam_values(record: &Json) -> Vec<f32> {
    record["cam"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn tiny() -> String {
    fixture("nets/resnet_tiny.onnx")
        .to_str()
        .unwrap()
        .to_string()
}

fn tiny_image() -> String {
    fixture("nets/resnet_tiny_input.png")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn default_run_explains_the_bundled_cat() {
    let dir = tempfile::tempdir().unwrap();
    let out = igcam(dir.path(), &["explain", "--backend", "cpu", "--steps", "8"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = stdout.lines().nth(1).expect("top-5 lines");
    assert!(
        ["Egyptian cat", "tabby", "tiger cat"]
            .iter()
            .any(|c| first.ends_with(c)),
        "top-1 line: {first}"
    );
    assert!(dir.path().join("igcam-out/chelsea_igcam.png").is_file());
    assert!(
        dir.path()
            .join("igcam-out/chelsea_igcam_heatmap.png")
            .is_file()
    );
    let records: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("igcam-out/chelsea.json")).unwrap())
            .unwrap();
    let r = &records[0];
    assert_eq!(r["image"], "chelsea.png");
    assert_eq!(r["model"], "efficientnet-lite0.onnx");
    assert_eq!(r["layer"], "/_swish_1/Clip_output_0");
    assert_eq!(r["method"], "igcam");
    assert_eq!(r["steps"], 8);
    assert!(
        r["backend"]
            .as_str()
            .unwrap()
            .starts_with("cpu (Burn flex, "),
        "{}",
        r["backend"]
    );
    assert_eq!(r["target"]["index"], r["top5"][0]["index"]);
    assert_eq!(r["top5"].as_array().unwrap().len(), 5);
    assert_eq!(
        (r["cam"]["height"].as_u64(), r["cam"]["width"].as_u64()),
        (Some(7), Some(7))
    );
    assert_eq!(r["cam"]["values"].as_array().unwrap().len(), 49);
    assert!(r["ms"].as_f64().unwrap() > 0.0);
    // The overlay is the whole 451x300 photo; the model saw the centre crop (see
    // preprocess::Geometry's test for the numbers).
    let photo = image::open(dir.path().join("igcam-out/chelsea_igcam.png")).unwrap();
    assert_eq!((photo.width(), photo.height()), (451, 300));
    assert_eq!(r["overlay_size"], serde_json::json!([451, 300]));
    assert_eq!(
        r["crop"],
        serde_json::json!({"x0": 94, "y0": 19, "x1": 357, "y1": 281})
    );
    let input = igcam(
        dir.path(),
        &[
            "explain",
            "--backend",
            "cpu",
            "--steps",
            "1",
            "--overlay",
            "input",
            "--out",
            "in",
        ],
    );
    assert!(input.status.success(), "{}", text(&input.stderr));
    let photo = image::open(dir.path().join("in/chelsea_igcam.png")).unwrap();
    assert_eq!((photo.width(), photo.height()), (224, 224));
}

#[test]
fn json_map_matches_the_reference_formula() {
    let dir = tempfile::tempdir().unwrap();
    let reference = json("nets/resnet_tiny.json");
    let json_path = dir.path().join("out.json");
    for method in ["igcam", "gradcam"] {
        let out = igcam(
            dir.path(),
            &[
                "explain",
                &tiny_image(),
                "--model",
                &tiny(),
                "--method",
                method,
                "--steps",
                "8",
                "--backend",
                "cpu",
                "--npy",
                "--json",
                path(&json_path),
                "--layer",
                reference["layer"].as_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let records: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        let got: Vec<f32> = records[0]["cam"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_close(method, &got, &array(&reference["maps"][method]).0, 1e-4);
        let stem = format!("resnet_tiny_input_{method}");
        let raw_bytes =
            std::fs::read(dir.path().join(format!("igcam-out/{stem}_cam.npy"))).unwrap();
        let raw = npyz::NpyFile::new(&raw_bytes[..]).unwrap();
        assert_eq!(raw.shape(), &[4, 4]);
        let raw: Vec<f32> = raw.into_vec().unwrap();
        assert_eq!(raw, got);
        let up_bytes =
            std::fs::read(dir.path().join(format!("igcam-out/{stem}_upsampled.npy"))).unwrap();
        let up = npyz::NpyFile::new(&up_bytes[..]).unwrap();
        assert_eq!(up.shape(), &[128, 128]);
    }
}

#[test]
fn several_methods_and_targets_write_one_record_each() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("all.json");
    let out = igcam(
        dir.path(),
        &[
            "explain",
            &tiny_image(),
            "--model",
            &tiny(),
            "--method",
            "gradcam,gradcampp,xgradcam,layercam,ig",
            "--target",
            "top1,3",
            "--steps",
            "4",
            "--backend",
            "cpu",
            "--json",
            path(&json_path),
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 10);
    assert_eq!(records[5]["target"]["index"], 3);
    assert_eq!(records[4]["method"], "ig");
    assert_eq!(
        (
            records[4]["cam"]["height"].as_u64(),
            records[4]["cam"]["width"].as_u64()
        ),
        (Some(128), Some(128))
    );
    assert!(
        dir.path()
            .join("igcam-out/resnet_tiny_input_gradcampp_c3.png")
            .is_file()
    );
}

/// `--method all`, `--quadrature` and `--eigen-smooth` reach the maps and the JSON: IG-CAM and
/// pixel IG under Gauss-Legendre equal Captum's (with IG's convergence delta), the eigen-smoothed
/// Grad-CAM pytorch-grad-cam's, and a short left Riemann path warns about its delta.
#[test]
fn method_quadrature_and_smoothing_options_reach_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let (image, model) = (tiny_image(), tiny());
    let run = |extra: &[&str], name: &str| {
        let json_path = dir.path().join(name);
        let args = [
            &[
                "explain",
                &image,
                "--model",
                &model,
                "--backend",
                "cpu",
                "--quiet",
            ][..],
            &["--json", path(&json_path)],
            extra,
        ]
        .concat();
        let out = igcam(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let records: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        (records, text(&out.stderr))
    };
    let by_method = |records: &Json, m: &str| {
        records
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == m)
            .unwrap_or_else(|| panic!("no {m} record"))
            .clone()
    };

    let (all, _) = run(&["--method", "all", "--steps", "2"], "all.json");
    let methods: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        igcam::cam::Method::names(),
        "--method all: one record per method, in table order"
    );

    let captum = json("nets/resnet_tiny_captum.json");
    let gauss = &captum["quadratures"]["gausslegendre"];
    let steps = captum["steps"].to_string();
    let (records, stderr) = run(
        &[
            "--method",
            "igcam,ig,gradcam",
            "--steps",
            &steps,
            "--quadrature",
            "gausslegendre",
        ],
        "gauss.json",
    );
    // The tiny net's score hardly moves from the baseline (by 0.01): even 0.0006 is 5.8 % of it.
    assert!(stderr.contains("the attributions sum to -0.0006 more than the score's change from the baseline (5.8 % of it)"), "{stderr}");
    let igcam_record = by_method(&records, "igcam");
    assert_eq!(igcam_record["quadrature"], "gausslegendre");
    assert!(
        igcam_record.get("convergence_delta").is_none(),
        "a CAM map has no delta"
    );
    assert_close(
        "igcam gausslegendre",
        &cam_values(&igcam_record),
        &array(&gauss["igcam"]).0,
        1e-4,
    );
    let ig = by_method(&records, "ig");
    let delta = ig["convergence_delta"].as_f64().unwrap();
    let want = gauss["convergence_delta"].as_f64().unwrap();
    assert!(
        (delta - want).abs() < 1e-4,
        "delta {delta} against Captum's {want}"
    );
    // A plain map is one point: no quadrature.
    assert!(by_method(&records, "gradcam").get("quadrature").is_none());

    let library = json("nets/resnet_tiny_gradcam.json");
    let layer = library["layers"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let (smoothed, _) = run(
        &["--method", "gradcam", "--eigen-smooth", "--layer", &layer],
        "smooth.json",
    );
    assert_close(
        "gradcam+eigen-smooth",
        &cam_values(&smoothed[0]),
        &array(&library["layers"][&layer]["maps"]["gradcam+eigen-smooth"]).0,
        1e-4,
    );

    // Aug-smoothing: pytorch-grad-cam's aug_smooth output, at the input's resolution.
    let (aug_layer, aug_maps) = library["layers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, l)| l["maps"].get("gradcam+aug-smooth").is_some())
        .expect("an aug-smoothed reference");
    let (augmented, _) = run(
        &["--method", "gradcam", "--aug-smooth", "--layer", aug_layer],
        "aug.json",
    );
    assert_eq!(augmented[0]["method"], "gradcam+aug-smooth");
    assert_eq!(
        (
            augmented[0]["cam"]["height"].as_u64(),
            augmented[0]["cam"]["width"].as_u64()
        ),
        (Some(128), Some(128))
    );
    assert_close(
        "gradcam+aug-smooth",
        &cam_values(&augmented[0]),
        &array(&aug_maps["maps"]["gradcam+aug-smooth"]).0,
        1e-4,
    );

    // Several layers: each scaled to the input and averaged, as pytorch-grad-cam does.
    let several = &library["several_layers"];
    let layers: Vec<&str> = several["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let (averaged, _) = run(
        &["--method", "gradcam", "--layer", &layers.join(",")],
        "several.json",
    );
    assert_eq!(averaged[0]["layer"], layers.join(","));
    assert_close(
        "gradcam on several layers",
        &cam_values(&averaged[0]),
        &array(&several["maps"]["gradcam"]).0,
        1e-4,
    );

    // A noise tunnel: the same seed, the same maps; another seed, others.
    let tunnel = |seed: &str, name: &str| {
        let args = [
            "--method",
            "gradcam",
            "--noise-tunnel",
            "vargrad",
            "--nt-samples",
            "2",
            "--seed",
            seed,
        ];
        let (records, _) = run(&args, name);
        assert_eq!(records[0]["method"], "gradcam+vargrad");
        cam_values(&records[0])
    };
    let first = tunnel("3", "nt3.json");
    assert_eq!(
        first,
        tunnel("3", "nt3-again.json"),
        "--seed reproduces the noise"
    );
    assert_ne!(first, tunnel("4", "nt4.json"), "another seed, other noise");

    // Two left Riemann points: a larger delta, said too.
    let (_, stderr) = run(&["--method", "ig", "--steps", "2"], "short.json");
    assert!(
        stderr.contains("warning: ig for class")
            && stderr.contains("raise --steps or use --quadrature gausslegendre"),
        "{stderr}"
    );
}

#[test]
fn layers_lists_candidates_and_marks_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = igcam(dir.path(), &["layers", &tiny()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let default: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with('*'))
        .collect();
    assert_eq!(default.len(), 1, "{stdout}");
    assert!(
        default[0].starts_with("/layer4/out_relu/Relu_output_0"),
        "{stdout}"
    );
    assert!(default[0].contains("[1, 32, 4, 4]"), "{stdout}");
    assert!(
        stdout.contains(
            "default (*): `/layer4/out_relu/Relu_output_0`, the input of the global pooling `"
        ),
        "{stdout}"
    );
}

/// A vision transformer (the zoo's timm ViT, legacy export): `layers` shows its token tensors
/// with the patch grid each is explained as and says why the default was chosen; `explain`
/// gives an 8×8 map there, its path in batches.
#[test]
fn a_vision_transformer_is_explained_on_its_patch_grid() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("zoo/vit_opset17.onnx");
    let out = igcam(dir.path(), &["layers", path(&model)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let layer = "/blocks/blocks.1/norm1/LayerNormalization_output_0";
    let row = stdout.lines().find(|l| l.starts_with(layer)).unwrap();
    assert!(
        row.contains("[1, 65, 32]") && row.contains("[1, 32, 8, 8]"),
        "{row}"
    );
    assert!(row.trim_end().ends_with('*'), "{row}");
    assert!(
        stdout.contains(&format!(
            "default (*): `{layer}`, the tokens the last attention block's projections read (its first normalisation, `/blocks/blocks.1/norm1/LayerNormalization`), as the 8×8 patch grid, without the 1 leading token(s)"
        )),
        "{stdout}"
    );
    let input = fixture("zoo/input.png");
    let json = dir.path().join("vit.json");
    let out = igcam(
        dir.path(),
        &[
            "explain",
            path(&input),
            "--model",
            path(&model),
            "--backend",
            "cpu",
            "--steps",
            "4",
            "--batch",
            "2",
            "--json",
            path(&json),
            "--out",
            path(dir.path()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("now follow the input's batch so the path runs in batches"),
        "{}",
        text(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report[0]["layer"], layer);
    assert_eq!(
        [&report[0]["cam"]["height"], &report[0]["cam"]["width"]],
        [8, 8]
    );
}

/// A segmenter (the zoo's LR-ASPP): `explain` explains every class with a region by default,
/// largest first, each record naming its region's pixels, and the overlay outlines the region
/// in white; a class without a region is refused in one line.
#[test]
fn a_segmenter_explains_every_class_region() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("zoo/lraspp_opset17.onnx");
    let input = fixture("zoo/input.png");
    let base = [
        "explain",
        path(&input),
        "--model",
        path(&model),
        "--backend",
        "cpu",
    ];
    let with = |extra: &[&'static str], files: &[&std::path::Path]| -> Vec<String> {
        let files = files.iter().map(|f| f.to_str().unwrap().to_string());
        base.iter()
            .map(|a| a.to_string())
            .chain(extra.iter().map(|a| a.to_string()))
            .chain(files)
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = igcam(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        out
    };
    let zoo = json("zoo/segmenters.json");
    let case = |file: &str| {
        zoo["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == file)
            .unwrap()
            .clone()
    };
    let json_path = dir.path().join("seg.json");
    let out = run(with(
        &[
            "--method",
            "gradcam",
            "--overlay",
            "input",
            "--out",
            ".",
            "--json",
        ],
        &[&json_path],
    ));
    assert!(
        text(&out.stdout).contains("input.png: the 5 largest class regions (share of the pixels)"),
        "{}",
        text(&out.stdout)
    );
    let records: Json =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let records = records.as_array().unwrap();
    // The regions' sizes from tests/fixtures/zoo/segmenters.json, largest first.
    let classes: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["target"]["index"].as_u64().unwrap(),
                r["region_pixels"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(classes, [(2, 6467), (1, 5361), (0, 3069), (3, 1487)]);
    let share = records[0]["target"]["prob"].as_f64().unwrap();
    assert!((share - 6467.0 / 16384.0).abs() < 1e-6, "{share}");
    assert_eq!(
        [&records[0]["cam"]["height"], &records[0]["cam"]["width"]],
        [8, 8]
    );
    let overlay = image::open(dir.path().join(records[0]["overlay"].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    let white = overlay.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    assert!(white > 100, "the region's outline: {white} white pixels");
    // A region of one's own: the top-left quadrant, class 1 over it, as pytorch-grad-cam's
    // SemanticSegmentationTarget with that mask.
    let quadrant = image::GrayImage::from_fn(128, 128, |x, y| {
        image::Luma([u8::from(x < 64 && y < 64) * 255])
    });
    let mask = dir.path().join("quadrant.png");
    quadrant.save(&mask).unwrap();
    let custom = dir.path().join("custom.json");
    run(with(
        &[
            "--method", "gradcam", "--target", "1", "--out", ".", "--json",
        ],
        &[&custom, Path::new("--region"), &mask],
    ));
    let lraspp = case("lraspp_opset17.onnx");
    assert_eq!(lraspp["custom_region"]["class"], 1);
    let records: Json = serde_json::from_str(&std::fs::read_to_string(&custom).unwrap()).unwrap();
    let error = common::rel_l2(
        &cam_values(&records[0]),
        &array(&lraspp["custom_region"]["gradcam"]).0,
    );
    assert!(
        error < 1e-4,
        "class 1 over the quadrant: relative L2 {error:.2e}"
    );
    let (tiny_image, tiny) = (tiny_image(), tiny());
    let classifier = ["explain", &tiny_image, "--model", &tiny, "--backend", "cpu"];
    let empty = dir.path().join("empty.png");
    image::GrayImage::new(128, 128).save(&empty).unwrap();
    let small = dir.path().join("small.png");
    image::GrayImage::new(64, 64).save(&small).unwrap();
    let refused = |extra: &[&'static str], files: &[&std::path::Path], needle: &str| {
        let args = with(extra, files);
        refuses(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    refused(
        &["--region"],
        &[&empty],
        "the region is empty (no non-zero pixel): mark the pixels to explain",
    );
    refused(
        &["--region"],
        &[&small],
        "small.png` is 64x64 but the model's output is 128x128 (its input after resize and crop): give a mask of that size",
    );
    refuses(
        &[&classifier[..], &["--region", path(&small)]].concat(),
        "a region applies to a segmenter's classes; this model is a classifier",
    );
    assert_eq!(
        case("deeplabv3_opset17.onnx")["pixels"][3],
        0,
        "class 3 has no region in the DeepLabV3 fixture"
    );
    let deeplab = fixture("zoo/deeplabv3_opset17.onnx");
    refuses(
        &[
            "explain",
            path(&input),
            "--model",
            path(&deeplab),
            "--backend",
            "cpu",
            "--target",
            "3",
        ],
        "class 3 (class 3) has no region in this image (no pixel where it scores highest), so there is nothing to explain; the classes present: 1 (class 1), 2 (class 2), 0 (class 0)",
    );
    refused(
        &["--aug-smooth"],
        &[],
        "aug-smoothing and the noise tunnel change the photo, which moves a segmenter's class regions; they do not explain segmenters yet",
    );
    refused(
        &["--method", "finercam"],
        &[],
        "finercam compares a classifier's classes and does not explain a segmenter; pick another method",
    );
    refuses(
        &[
            "explain",
            path(&input),
            "--backend",
            "cpu",
            "--target",
            "present",
        ],
        "present names a segmenter's classes with a region; this model is a classifier",
    );
    refuses(
        &["layers", path(&model), "--task", "classify"],
        "is not a model to classify: output `out` [N, 4, 128, 128] scores each of 4 classes at every pixel; pass --task segment (or auto)",
    );
    refuses(
        &["layers", path(&model), "--output", "logits"],
        "the model has no output `logits`; its outputs: `out`",
    );
    refuses(
        &[&classifier[..], &["--task", "segment"]].concat(),
        "is not a model to segment: output `logits` scores 10 classes; pass --task classify (or auto)",
    );
    let voc = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/voc-mini");
    refuses(
        &[
            "eval",
            "--data",
            voc,
            "--model",
            path(&model),
            "--backend",
            "cpu",
            "--out",
            "ev",
        ],
        "the metrics score a classifier's class confidence; this model is a segmenter, whose maps they do not score yet",
    );
}

/// A detector (the zoo's YOLOv8): `explain` lists the detections after the confidence
/// threshold and NMS, explains each picked one over the three neck layers, draws the boxes,
/// and writes each detection's box, class and score; zero detections are a notice and an
/// empty list; detector-only and segmenter-only options are refused in one line.
#[test]
fn a_detector_explains_each_detection() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("zoo/yolov8_opset17.onnx");
    let input = fixture("zoo/input.png");
    let base = [
        "explain",
        path(&input),
        "--model",
        path(&model),
        "--backend",
        "cpu",
    ];
    let zoo = json("zoo/detectors.json");
    let want = zoo["families"]["yolov8"]["detections"].as_array().unwrap();
    let case = &zoo["cases"].as_array().unwrap()[0];
    assert_eq!(case["model"], "yolov8_opset17.onnx");
    let json_path = dir.path().join("det.json");
    let args = [
        &base[..],
        &[
            "--method",
            "gradcam",
            "--target",
            "top2,det4",
            "--overlay",
            "input",
            "--out",
            ".",
        ],
        &["--json", path(&json_path)],
    ]
    .concat();
    let out = igcam(dir.path(), &args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("notice: `") && stderr.contains("is a detector: output `output0` [N, 7, 336]: 336 anchors, each a box (x, y, w, h) and 3 class scores (ultralytics YOLOv8/11's layout); each detection is explained at its anchor (--task detect says so)"),
        "{stderr}"
    );
    let layers: Vec<&str> = case["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        stderr.contains(&format!("layer: {}", layers.join(", "))),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "input.png: {} detection(s) (confidence, class, box x0 y0 x1 y1 in the model's input)",
            want.len()
        )),
        "{stdout}"
    );
    let records: Json =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 3);
    for (record, index) in records.iter().zip([0, 1, 4]) {
        let d = &record["detection"];
        assert_eq!(d["index"], index);
        assert_eq!(d["anchor"], want[index]["anchor"]);
        assert_eq!(d["class"], want[index]["class"]);
        assert_eq!(record["target"]["index"], want[index]["class"]);
        let score = d["score"].as_f64().unwrap();
        assert!(
            (score - want[index]["score"].as_f64().unwrap()).abs() < 1e-4,
            "{score}"
        );
        assert!((record["target"]["prob"].as_f64().unwrap() - score).abs() < 1e-6);
        for (k, name) in ["x0", "y0", "x1", "y1"].iter().enumerate() {
            let (got, reference) = (
                d["box"][k].as_f64().unwrap(),
                want[index][name].as_f64().unwrap(),
            );
            assert!(
                (got - reference).abs() < 1e-2,
                "{name}: {got} vs {reference}"
            );
            // The zoo's photo is the input size: the photo's box is the input's.
            assert!((d["box_in_photo"][k].as_f64().unwrap() - got).abs() < 1e-3);
        }
        assert_eq!(record["layer"], layers.join(","));
        assert_eq!(
            [&record["cam"]["height"], &record["cam"]["width"]],
            [128, 128]
        );
    }
    let overlay = image::open(dir.path().join(records[0]["overlay"].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    assert!(
        records[0]["overlay"]
            .as_str()
            .unwrap()
            .ends_with("input_gradcam_det0.png")
    );
    let green = overlay.pixels().filter(|p| p.0 == [0, 255, 0]).count();
    assert!(green > 50, "the explained box: {green} green pixels");
    // A photo of another shape is resized whole (no centre crop): its boxes map back to it.
    let wide = dir.path().join("wide.png");
    image::imageops::resize(
        &image::open(&input).unwrap().to_rgb8(),
        256,
        128,
        image::imageops::FilterType::Triangle,
    )
    .save(&wide)
    .unwrap();
    let wide_json = dir.path().join("wide.json");
    let out = igcam(
        dir.path(),
        &[
            "explain",
            path(&wide),
            "--model",
            path(&model),
            "--backend",
            "cpu",
            "--method",
            "gradcam",
            "--target",
            "top1",
            "--out",
            "w",
            "--json",
            path(&wide_json),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record =
        &serde_json::from_str::<Json>(&std::fs::read_to_string(&wide_json).unwrap()).unwrap()[0];
    assert_eq!(
        record["crop"],
        serde_json::json!({"x0": 0, "y0": 0, "x1": 256, "y1": 128})
    );
    let (b, p) = (
        &record["detection"]["box"],
        &record["detection"]["box_in_photo"],
    );
    for k in 0..4 {
        let scale = if k % 2 == 0 { 2.0 } else { 1.0 };
        assert!(
            (p[k].as_f64().unwrap() - scale * b[k].as_f64().unwrap()).abs() < 1e-3,
            "{b} -> {p}"
        );
    }
    // A class picks its every detection.
    let of_class = want.iter().filter(|d| d["class"] == 2).count();
    let class_json = dir.path().join("class.json");
    let out = igcam(
        dir.path(),
        &[
            &base[..],
            &[
                "--method",
                "gradcam",
                "--target",
                "2",
                "--out",
                ".",
                "--json",
                path(&class_json),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Json =
        serde_json::from_str(&std::fs::read_to_string(&class_json).unwrap()).unwrap();
    assert_eq!(records.as_array().unwrap().len(), of_class);
    // Nothing above the threshold: a notice and an empty list, exit 0.
    let none_json = dir.path().join("none.json");
    let out = igcam(
        dir.path(),
        &[&base[..], &["--conf", "0.999", "--out", "none"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("notice: input.png: no detection scores above --conf 0.999: nothing to explain (a lower --conf keeps more)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("none/input.json")).unwrap(),
        "[]"
    );
    assert!(!none_json.exists());
    let refused = |extra: &[&str], needle: &str| refuses(&[&base[..], extra].concat(), needle);
    refused(
        &["--target", "det99"],
        &format!(
            "det99: the image has {} detection(s), det0 to det{} (a lower --conf keeps more)",
            want.len(),
            want.len() - 1
        ),
    );
    refused(
        &["--conf", "1.5"],
        "--conf 1.5 is outside 0..=1: give a threshold between 0 and 1",
    );
    refused(
        &["--iou=-0.1"],
        "--iou -0.1 is outside 0..=1: give a threshold between 0 and 1",
    );
    refused(&["--max-det", "0"], "--max-det must be at least 1");
    refused(
        &["--aug-smooth"],
        "aug-smoothing and the noise tunnel change the photo, which moves a detector's detections; they do not explain detectors yet",
    );
    refused(
        &["--method", "finercam"],
        "finercam compares a classifier's classes and does not explain a detector; pick another method",
    );
    let mask = dir.path().join("mask.png");
    image::GrayImage::from_pixel(128, 128, image::Luma([255]))
        .save(&mask)
        .unwrap();
    refused(
        &["--region", path(&mask)],
        "a region applies to a segmenter's classes; this model is a detector (--target picks detections)",
    );
    refuses(
        &["layers", path(&model), "--task", "segment"],
        "is not a model to segment: output `output0` [N, 7, 336]: 336 anchors, each a box (x, y, w, h) and 3 class scores (ultralytics YOLOv8/11's layout); pass --task detect (or auto)",
    );
    let voc = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/voc-mini");
    refuses(
        &[
            "eval",
            "--data",
            voc,
            "--model",
            path(&model),
            "--backend",
            "cpu",
            "--out",
            "ev",
        ],
        "the metrics score a classifier's class confidence; this model is a detector, whose maps they do not score yet",
    );
}

#[test]
fn a_model_with_a_fixed_batch_of_one_runs_the_path_in_batches() {
    use onnx_ir::{AttributeProto, Message, ModelProto};
    let dir = tempfile::tempdir().unwrap();
    // The fixture as the legacy exporter writes it, and with `allowzero = 1` on its Reshape as
    // PyTorch's `dynamo=True` exporter writes it (0 then means a literal zero).
    let legacy = fixture("layers/fixed_batch.onnx");
    let mut dynamo = ModelProto::parse_from_bytes(&std::fs::read(&legacy).unwrap()).unwrap();
    let reshape = dynamo
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "Reshape")
        .unwrap();
    reshape.attribute.push(AttributeProto {
        name: "allowzero".into(),
        i: 1,
        ..Default::default()
    });
    let allowzero = dir.path().join("fixed_batch_allowzero.onnx");
    std::fs::write(&allowzero, dynamo.write_to_bytes().unwrap()).unwrap();
    for model in [legacy, allowzero] {
        fixed_batch_runs_in_batches(dir.path(), &model);
    }
}

/// A model with two outputs (the ResNet fixture with its pooled features as a second output):
/// the first is explained, and a notice names the other and `--output`; `--output` picks the
/// other, a 32-"class" output here.
#[test]
fn a_model_with_several_outputs_explains_the_first_or_the_one_named() {
    use onnx_ir::{Message, ModelProto, ValueInfoProto};
    let dir = tempfile::tempdir().unwrap();
    let mut model = ModelProto::parse_from_bytes(&std::fs::read(tiny()).unwrap()).unwrap();
    model.graph.as_mut().unwrap().output.push(ValueInfoProto {
        name: "/Flatten_output_0".into(),
        ..Default::default()
    });
    let two = dir.path().join("two_outputs.onnx");
    std::fs::write(&two, model.write_to_bytes().unwrap()).unwrap();
    let out = igcam(dir.path(), &["layers", path(&two)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has several outputs; explaining the first, `logits` (also: `/Flatten_output_0`); --output NAME picks another"),
        "{}",
        text(&out.stderr)
    );
    let json = dir.path().join("flat.json");
    let out = igcam(
        dir.path(),
        &[
            "explain",
            &tiny_image(),
            "--model",
            path(&two),
            "--backend",
            "cpu",
            "--method",
            "gradcam",
            "--output",
            "/Flatten_output_0",
            "--json",
            path(&json),
            "--out",
            ".",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("several outputs"),
        "{}",
        text(&out.stderr)
    );
    let records: Json = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let target = records[0]["target"]["index"].as_u64().unwrap();
    assert!(target < 32, "a class of the 32 features: {target}");
}

fn fixed_batch_runs_in_batches(dir: &Path, model: &Path) {
    let img = tiny_image();
    let run = |batch: &str| {
        let json = dir.join(format!("b{batch}.json"));
        let out = igcam(
            dir,
            &[
                "explain",
                &img,
                "--model",
                path(model),
                "--backend",
                "cpu",
                "--steps",
                "8",
                "--batch",
                batch,
                "--quiet",
                "--json",
                path(&json),
            ],
        );
        assert!(out.status.success(), "batch {batch}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("was exported with a fixed batch of 1; 1 node(s) that bake it in (Reshape, Expand, Concat of a constant) now follow"),
            "{stderr}"
        );
        let records: Json = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        records[0]["cam"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    // Batches of 4 path points give the map of one point per pass.
    let (four, one) = (run("4"), run("1"));
    assert_eq!(four.len(), 256);
    let num: f64 = four.iter().zip(&one).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = one.iter().map(|b| b * b).sum();
    assert!((num / den).sqrt() <= 1e-5, "rel L2 {}", (num / den).sqrt());
}

/// The new exporter's `as_strided` bakes the batch of 1 into a Gather (ConvNeXt): the model
/// cannot batch, so it says so and runs one point per pass, with the map of a batched request.
#[test]
fn a_model_that_cannot_batch_says_so_and_runs_one_point_per_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = igcam(
        dir.path(),
        &[
            "explain",
            &tiny_image(),
            "--model",
            path(&fixture("zoo/convnext_dynamo.onnx")),
            "--backend",
            "cpu",
            "--steps",
            "4",
            "--batch",
            "4",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "exported with a fixed batch of 1 and node `node_as_strided` does not follow the batch, so images and path points run one per forward"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_default_layer_is_what_the_global_pooling_reads() {
    // (fixture, expected default, why); the last activation would be s2, rb and rc.
    let cases = [
        ("silu_gap", "m2", "the input of the global pooling `pool`"),
        (
            "concat_reducemean",
            "cat",
            "the input of the global pooling `pool`",
        ),
        (
            "conv_classifier",
            "fire",
            "the input of the 1×1-convolution classifier `classifier`",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, layer, why) in cases {
        let model = fixture(&format!("layers/{name}.onnx"));
        let out = igcam(dir.path(), &["layers", path(&model)]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!("default (*): `{layer}`, {why}")),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn bad_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let notimage = dir.path().join("notes.png");
    std::fs::write(&notimage, b"hello, this is text").unwrap();
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &std::fs::read(tiny_image()).unwrap()[..600]).unwrap();
    let model = tiny();
    let cpu = ["--backend", "cpu", "--model", model.as_str()];
    refuses(
        &[&["explain", "/nonexistent/cat.png"][..], &cpu].concat(),
        "cannot read `/nonexistent/cat.png`",
    );
    refuses(
        &[&["explain", path(&empty)][..], &cpu].concat(),
        "the file is empty",
    );
    refuses(
        &[&["explain", path(&notimage)][..], &cpu].concat(),
        "not a PNG or JPEG",
    );
    refuses(
        &[&["explain", path(&truncated)][..], &cpu].concat(),
        "cannot decode image",
    );
    refuses(
        &[&["explain", path(&fixture("bad/huge.png"))][..], &cpu].concat(),
        "larger than 16384x16384 pixels",
    );
}

#[test]
fn bad_models_and_layers_are_refused() {
    let img = tiny_image();
    let model = tiny();
    let base = ["explain", img.as_str(), "--backend", "cpu"];
    // An output of shape [1, 7, 4]: neither class scores nor a score per class and pixel.
    let tokens_out = fixture("ops/expand_where_class_token.onnx");
    refuses(
        &[&base[..], &["--model", path(&tokens_out)]].concat(),
        "not an image classifier, segmenter or detector: output `y` has shape [1, 7, 4]; igcam needs one NCHW image input and one [N, classes] output (a classifier), [N, classes, H, W] (a segmenter) or [N, 4 + classes, anchors] or [N, anchors, 5 + classes] (a YOLO detector without NMS)",
    );
    refuses(
        &[
            &base[..],
            &["--model", path(&fixture("bad/unsupported_op.onnx"))],
        ]
        .concat(),
        "unsupported ONNX op `Einsum` at node `the_einsum`: export the model",
    );
    refuses(
        &[
            &base[..],
            &["--model", path(&fixture("bad/unsupported_ops.onnx"))],
        ]
        .concat(),
        "unsupported ONNX ops `Einsum` at node `einsum_1`, `Trilu` at nodes `trilu_1` and 1 more, \
         `GridSample` at node `gs_1`: export the model",
    );
    refuses(
        &[
            &base[..],
            &["--model", path(&fixture("nets/resnet_tiny.json"))],
        ]
        .concat(),
        "cannot parse ONNX model",
    );
    refuses(
        &[
            &base[..],
            &["--model", &model, "--layer", "/layer4/out_relu/Relu_output"],
        ]
        .concat(),
        "unknown layer",
    );
    refuses(
        &[
            &base[..],
            &["--model", &model, "--layer", "/Flatten_output_0"],
        ]
        .concat(),
        "is neither a 4-D [N, C, H, W] tensor nor transformer tokens [N, tokens, C] with a patch grid (shape [1, 32])",
    );
}

#[test]
fn bad_options_are_refused() {
    let img = tiny_image();
    let model = tiny();
    let base = [
        "explain",
        img.as_str(),
        "--backend",
        "cpu",
        "--model",
        model.as_str(),
    ];
    refuses(
        &[&base[..], &["--target", "5000"]].concat(),
        "target class 5000 is out of range: the model has 10 classes (valid: 0 to 9)",
    );
    refuses(
        &[&base[..], &["--target", "zebra"]].concat(),
        "unknown target label `zebra`",
    );
    refuses(
        &[&base[..], &["--steps", "0"]].concat(),
        "--steps must be at least 1",
    );
    refuses(
        &[&base[..], &["--batch", "0"]].concat(),
        "--batch must be at least 1",
    );
    refuses(
        &[
            &base[..],
            &["--quadrature", "gausslegendre", "--steps", "1"],
        ]
        .concat(),
        "--steps must be at least 2 for the gausslegendre quadrature",
    );
    refuses(
        &[
            &base[..],
            &["--noise-tunnel", "smoothgrad", "--nt-samples", "0"],
        ]
        .concat(),
        "--nt-samples must be at least 1",
    );
    refuses(
        &[
            &base[..],
            &["--noise-tunnel", "smoothgrad", "--nt-stdev=-1"],
        ]
        .concat(),
        "--nt-stdev must be a finite number at least 0, not -1",
    );
    refuses(
        &[&base[..], &["--nt-samples", "3"]].concat(),
        "the following required arguments were not provided:; --noise-tunnel <NOISE_TUNNEL>",
    );
    refuses(
        &[
            &base[..],
            &[
                "--method",
                "kpcacam",
                "--layer",
                "/stem/stem.2/Relu_output_0",
            ],
        ]
        .concat(),
        "KPCA-CAM's kernel over 64x64 positions is too large (at most 400); pass --layer to a later, smaller layer",
    );
    refuses(
        &[&base[..], &["--quadrature", "simpson"]].concat(),
        "invalid value 'simpson' for '--quadrature <QUADRATURE>'; possible values: riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre",
    );
    // The choices are the method table's, in its order.
    refuses(
        &[&base[..], &["--method", "magic"]].concat(),
        &format!(
            "invalid value 'magic' for '--method <METHODS>'; possible values: {}, all; see --help",
            igcam::cam::Method::names().join(", ")
        ),
    );
    refuses(
        &[&base[..], &["--colormap", "rainbow"]].concat(),
        "invalid value 'rainbow' for '--colormap <COLORMAP>'",
    );
    refuses(
        &[&base[..], &["--frobnicate"]].concat(),
        "unexpected argument '--frobnicate' found",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("sub");
    refuses(
        &[&base[..], &["--out", path(&out)]].concat(),
        "cannot write to output folder",
    );
}

#[test]
fn a_folder_with_one_bad_image_still_writes_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("imgs");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(tiny_image(), images.join("a.png")).unwrap();
    std::fs::write(images.join("b.png"), b"broken").unwrap();
    let out = igcam(
        dir.path(),
        &[
            "explain",
            path(&images),
            "--model",
            &tiny(),
            "--backend",
            "cpu",
            "--method",
            "gradcam",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("b.png"), "{stderr}");
    assert!(stderr.contains("1 of 2 images failed"), "{stderr}");
    assert!(dir.path().join("igcam-out/a_gradcam.png").is_file());
}

/// Runs `explain` on the tiny net with `backend`, optionally hiding every GPU driver; returns
/// the notices on stderr and the JSON `backend` field.
fn run_backend(backend: &str, hide_adapters: bool) -> (Vec<String>, String) {
    run_backend_with(backend, hide_adapters, &[])
}

/// [`run_backend`] with more environment variables.
fn run_backend_with(
    backend: &str,
    hide_adapters: bool,
    env: &[(&str, &str)],
) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("r.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_igcam-wgpu"));
    cmd.args([
        "explain",
        &tiny_image(),
        "--model",
        &tiny(),
        "--method",
        "gradcam",
        "--backend",
        backend,
        "--json",
        path(&json_path),
    ])
    .current_dir(dir.path())
    .envs(env.iter().copied());
    if hide_adapters {
        // Hide every Vulkan driver and every EGL (OpenGL) vendor: wgpu then finds no adapter.
        cmd.env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json");
    }
    let out = cmd.output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notices = stderr
        .lines()
        .filter(|l| l.starts_with("notice:"))
        .map(String::from)
        .collect();
    let records: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    (notices, records[0]["backend"].as_str().unwrap().to_string())
}

#[test]
fn without_any_gpu_adapter_wgpu_falls_back_to_the_cpu_with_a_notice() {
    let (notices, backend) = run_backend("wgpu", true);
    assert_eq!(
        notices,
        [
            "notice: no usable wgpu adapter (Vulkan, Metal or DX12) was found; running on the CPU instead"
        ]
    );
    assert!(backend.starts_with("cpu (Burn flex, "), "{backend}");
    // The default (auto) runs on the CPU without a word when there is no adapter at all.
    let (notices, backend) = run_backend("auto", true);
    assert!(notices.is_empty(), "{notices:?}");
    assert!(backend.starts_with("cpu (Burn flex, "), "{backend}");
}

/// CI's only adapter is lavapipe (software Vulkan): the default backend, made to list the
/// adapters although the machine has no GPU device file, skips it in one line, names it and
/// says how to force it; `--backend wgpu` still takes it. (On a machine with a real GPU, auto
/// takes the GPU without a notice.)
#[test]
fn auto_skips_a_software_adapter_and_says_so() {
    let (notices, backend) = run_backend_with("auto", false, &[("IGCAM_PROBE_ADAPTERS", "1")]);
    if notices.is_empty() {
        assert!(backend.starts_with("wgpu ("), "a real GPU: {backend}");
        return;
    }
    let [notice] = notices.as_slice() else {
        panic!("one notice expected: {notices:?}");
    };
    assert!(
        notice.starts_with("notice: skipped the software GPU adapter `")
            && notice.ends_with(
                "` (slower than the CPU backend here); running on the CPU, force it with --backend wgpu"
            ),
        "{notice}"
    );
    assert!(backend.starts_with("cpu (Burn flex, "), "{backend}");
    let (notices, backend) = run_backend("wgpu", false);
    assert!(notices.is_empty(), "{notices:?}");
    assert!(backend.starts_with("wgpu ("), "{backend}");
}

/// Linux with no GPU device file (CI, this machine): `auto` runs on the CPU without a notice,
/// lavapipe installed or not (it is not even looked for); `--backend wgpu` still finds it.
#[test]
fn auto_without_a_gpu_device_file_runs_on_the_cpu_silently() {
    let gpu_files = ["/dev/dri", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"];
    if !cfg!(target_os = "linux") || gpu_files.iter().any(|f| Path::new(f).exists()) {
        return;
    }
    let (notices, backend) = run_backend("auto", false);
    assert!(notices.is_empty(), "{notices:?}");
    assert!(backend.starts_with("cpu (Burn flex, "), "{backend}");
}

fn voc_mini() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/voc-mini")
        .to_str()
        .unwrap()
        .to_string()
}

fn eval(dir: &Path, out: &str, extra: &[&str]) -> Output {
    let data = voc_mini();
    let classes = format!("{data}/classes.txt");
    let args = [
        &[
            "eval",
            "--data",
            data.as_str(),
            "--classes",
            classes.as_str(),
            "--methods",
            "igcam,gradcam",
            "--steps",
            "4",
        ][..],
        &[
            "--curve-steps",
            "4",
            "--backend",
            "cpu",
            "--quiet",
            "--out",
            out,
        ],
        extra,
    ]
    .concat();
    igcam(dir, &args)
}

/// The table without its timing column (timings differ between any two runs).
fn table_without_ms(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let ms = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "ms/explanation")
        .expect("a timing column");
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(ms);
            cells.join(",")
        })
        .collect()
}

#[test]
fn eval_metrics_all_writes_every_metric_its_intervals_and_the_paired_tests() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--metrics",
        "all",
        "--regions",
        "6",
        "--fc-runs",
        "5",
        "--fc-subset",
        "5000",
        "--road-percentiles",
        "30,70",
        "--road-accuracy-percentages",
        "20,60",
        "--ms-samples",
        "2",
        "--mprt-layers",
        "2",
        "--limit",
        "3",
        "--npy",
    ];
    let out = eval(dir.path(), "all", &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("| top_k (higher) | sparseness (higher) | complexity (lower) | pixel_flipping (lower) | region_perturbation (higher) | faithfulness_correlation (higher) | road_morf (lower) | road_lerf (higher) | road_combined (higher) | road_accuracy (lower) | irof (higher) | max_sensitivity (lower) | random_logit (lower) | mprt (lower) | mprt_ssim (lower) |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paired comparisons significant at 0.05 after Holm's correction"),
        "{stdout}"
    );
    let rows: Vec<Json> = std::fs::read_to_string(dir.path().join("all/rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        let extra = r["extra"].as_object().unwrap();
        let names: Vec<&str> = extra.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "complexity",
                "faithfulness_correlation",
                "irof",
                "max_sensitivity",
                "mprt",
                "mprt_ssim",
                "pixel_flipping",
                "random_logit",
                "region_perturbation",
                "road_accuracy",
                "road_combined",
                "road_lerf",
                "road_morf",
                "sparseness",
                "top_k"
            ]
        );
        for (k, v) in extra {
            assert!(v.as_f64().is_some_and(f64::is_finite), "{k}: {v}");
        }
        // ROAD's curves, one value per percentile.
        for (curve, len) in [("road_morf", 2), ("road_lerf", 2), ("road_accuracy", 2)] {
            assert_eq!(r["curves"][curve].as_array().unwrap().len(), len, "{curve}");
        }
        // MPRT's sanity plot: the original (1), then the top 2 layers randomised.
        for curve in ["mprt_spearman", "mprt_ssim"] {
            let c = r["curves"][curve].as_array().unwrap();
            assert_eq!(c.len(), 3, "{curve}: {c:?}");
            assert_eq!(c[0].as_f64(), Some(1.0), "{curve}: {c:?}");
        }
        // Sparseness recomputed from the map eval wrote (Gini of the values plus 1e-7).
        let stem = format!(
            "{}_{}_{}",
            r["image"].as_str().unwrap(),
            r["class"].as_str().unwrap(),
            r["method"].as_str().unwrap()
        );
        let bytes = std::fs::read(dir.path().join(format!("all/maps/{stem}.map.npy"))).unwrap();
        let map: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
        let mut a: Vec<f64> = map.iter().map(|&v| f64::from(v) + 1e-7).collect();
        a.sort_by(f64::total_cmp);
        let n = a.len() as f64;
        let gini = a
            .iter()
            .enumerate()
            .map(|(k, v)| (2.0 * (k + 1) as f64 - n - 1.0) * v)
            .sum::<f64>()
            / (n * a.iter().sum::<f64>());
        assert!(
            (extra["sparseness"].as_f64().unwrap() - gini).abs() < 1e-9,
            "{stem}"
        );
    }
    let csv = std::fs::read_to_string(dir.path().join("all/summary.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains(",ebpg 95% lo,ebpg 95% hi,"), "{header}");
    assert!(
        header.ends_with(",mprt_ssim 95% lo,mprt_ssim 95% hi"),
        "{header}"
    );
    let stats: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("all/stats.json")).unwrap()).unwrap();
    let intervals = stats["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 2 * 21, "2 methods x 21 metrics");
    for i in intervals {
        let (lo, mean, hi) = (
            i["lo"].as_f64().unwrap(),
            i["mean"].as_f64().unwrap(),
            i["hi"].as_f64().unwrap(),
        );
        assert!(lo <= mean + 1e-12 && mean <= hi + 1e-12, "{i}");
    }
    let comparisons = stats["comparisons"].as_array().unwrap();
    assert!(!comparisons.is_empty());
    for c in comparisons {
        assert_eq!(
            (c["a"].as_str(), c["b"].as_str()),
            (Some("igcam"), Some("gradcam"))
        );
        let (p, holm) = (c["p"].as_f64().unwrap(), c["p_holm"].as_f64().unwrap());
        assert!(
            (0.0..=1.0).contains(&p) && p <= holm + 1e-15 && holm <= 1.0,
            "{c}"
        );
    }
}

#[test]
fn eval_writes_the_table_and_two_shards_merge_to_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let full = eval(dir.path(), "full", &["--npy"]);
    assert!(full.status.success(), "{}", text(&full.stderr));
    let stdout = text(&full.stdout);
    assert!(
        stdout.contains("| method | n | EBPG % | Bbox %"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "5 images, 8 explanations; 0 images unreadable, 0 annotations bad, 2 objects skipped"
        ),
        "{stdout}"
    );
    let rows: Vec<Json> = std::fs::read_to_string(dir.path().join("full/rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8, "4 mapped (image, class) pairs x 2 methods");
    // EBPG and Bbox recomputed from the maps and masks eval wrote.
    for r in &rows {
        let stem = format!(
            "{}_{}_{}",
            r["image"].as_str().unwrap(),
            r["class"].as_str().unwrap(),
            r["method"].as_str().unwrap()
        );
        let read = |suffix: &str| -> Vec<f32> {
            let bytes =
                std::fs::read(dir.path().join(format!("full/maps/{stem}.{suffix}.npy"))).unwrap();
            npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
        };
        let (map, mask) = (read("map"), read("mask"));
        let inside: f64 = map
            .iter()
            .zip(&mask)
            .filter(|(_, m)| **m > 0.5)
            .map(|(v, _)| f64::from(*v))
            .sum();
        let total: f64 = map.iter().map(|v| f64::from(*v)).sum();
        assert!(
            (r["ebpg"].as_f64().unwrap() - inside / total).abs() < 1e-9,
            "{stem}: EBPG"
        );
        let n = mask.iter().filter(|m| **m > 0.5).count();
        let mut order: Vec<usize> = (0..map.len()).collect();
        order.sort_by(|&a, &b| map[b].total_cmp(&map[a]).then(a.cmp(&b)));
        let hits = order[..n].iter().filter(|&&i| mask[i] > 0.5).count();
        assert!(
            (r["bbox"].as_f64().unwrap() - hits as f64 / n as f64).abs() < 1e-12,
            "{stem}: Bbox"
        );
    }

    for shard in ["1/2", "2/2"] {
        let out = eval(
            dir.path(),
            &format!("shard{}", &shard[..1]),
            &["--shard", shard],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let merged = igcam(
        dir.path(),
        &["merge", "shard1", "shard2", "--out", "merged"],
    );
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    assert_eq!(
        table_without_ms(&dir.path().join("merged")),
        table_without_ms(&dir.path().join("full"))
    );
    let stats: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("merged/stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["images"], 5);
    assert_eq!(stats["skipped_objects"]["person"], 2);
    let twice = igcam(dir.path(), &["merge", "shard1", "shard1", "--out", "twice"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(text(&twice.stderr).contains("appears in two shards"));
}

#[test]
fn eval_counts_corrupt_images_and_bad_xml_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("voc");
    for sub in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let src = Path::new(&voc_mini()).to_path_buf();
    for f in [
        "JPEGImages/chelsea.jpg",
        "Annotations/chelsea.xml",
        "Annotations/coffee.xml",
    ] {
        std::fs::copy(src.join(f), data.join(f)).unwrap();
    }
    std::fs::write(data.join("JPEGImages/coffee.jpg"), b"not a jpeg").unwrap();
    std::fs::write(data.join("Annotations/broken.xml"), b"<annotation><size>").unwrap();
    std::fs::write(data.join("JPEGImages/broken.jpg"), b"").unwrap();
    std::fs::write(
        data.join("ImageSets/Main/test.txt"),
        "chelsea\ncoffee\nbroken\n",
    )
    .unwrap();
    let classes = src.join("classes.txt");
    let out = igcam(
        dir.path(),
        &[
            "eval",
            "--data",
            path(&data),
            "--classes",
            path(&classes),
            "--methods",
            "gradcam",
            "--backend",
            "cpu",
            "--quiet",
            "--curve-steps",
            "2",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("1 images, 1 explanations; 1 images unreadable, 1 annotations bad"),
        "{stdout}"
    );
    assert!(stdout.contains("coffee"), "{stdout}");
}

#[test]
fn eval_refuses_bad_options() {
    let data = voc_mini();
    refuses(
        &[
            "eval",
            "--data",
            &data,
            "--shard",
            "3/2",
            "--backend",
            "cpu",
        ],
        "--shard `3/2` must be k/n",
    );
    refuses(
        &[
            "eval",
            "--data",
            &data,
            "--classes",
            "coco",
            "--backend",
            "cpu",
        ],
        "--classes `coco` is neither",
    );
    refuses(
        &["eval", "--data", "/nonexistent", "--backend", "cpu"],
        "--data `/nonexistent` is not a folder",
    );
}

#[test]
fn bench_prints_timings_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let out = igcam(
        dir.path(),
        &[
            "bench",
            "--model",
            &tiny(),
            "--image",
            &tiny_image(),
            "--methods",
            "igcam,gradcam",
            "--steps",
            "4",
            "--reps",
            "3",
            "--backend",
            "cpu",
            "--json",
            path(&json_path),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("| method | maps | median ms | p90 ms | images/s |"));
    let report: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["tool"], "igcam");
    assert_eq!(report["backend"], "cpu");
    assert_eq!(report["steps"], 4);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["method"], "igcam");
    assert!(results[0]["median_ms"].as_f64().unwrap() > 0.0);
    assert!(results[0]["p90_ms"].as_f64().unwrap() >= results[0]["median_ms"].as_f64().unwrap());
    assert!(report["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

/// `bench --profile` with `IGCAM_CPU_ISA` set.
fn profile_with_isa(isa: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_igcam-wgpu"))
        .args(["bench", "--model", &tiny(), "--image", &tiny_image()])
        .args([
            "--steps",
            "4",
            "--reps",
            "1",
            "--backend",
            "cpu",
            "--profile",
        ])
        .current_dir(dir.path())
        .env("IGCAM_CPU_ISA", isa)
        .output()
        .expect("binary runs")
}

#[test]
fn bench_profile_names_each_kernels_isa_and_igcam_cpu_isa_caps_them() {
    let out = profile_with_isa("portable");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("CPU kernels and the instruction set each ran with"),
        "{stdout}"
    );
    // The tiny net pools: the window kernel ran, on the capped path; gemm picks its own.
    assert!(
        stdout.contains("| depthwise convolution and pooling | portable |"),
        "{stdout}"
    );
    assert!(stdout.contains("| matrix products (gemm) | "), "{stdout}");
    assert!(
        stdout.contains("convolutions: ") && stdout.contains(" GFLOP/s"),
        "{stdout}"
    );

    let out = profile_with_isa("sse9");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: IGCAM_CPU_ISA `sse9` is not an instruction set: use one of portable, avx2, avx512, or unset it"
    );
}

#[test]
fn a_model_with_external_data_gives_the_inline_models_maps() {
    // resnet_tiny.onnx + resnet_tiny.onnx.data, as torch.onnx.export(dynamo=True) saves it.
    let dir = tempfile::tempdir().unwrap();
    let external = fixture("external/resnet_tiny.onnx");
    let mut maps = Vec::new();
    for (model, json) in [
        (tiny(), "inline.json"),
        (path(&external).to_string(), "ext.json"),
    ] {
        let out = igcam(
            dir.path(),
            &[
                "explain",
                &tiny_image(),
                "--model",
                &model,
                "--backend",
                "cpu",
                "--steps",
                "4",
                "--quiet",
                "--json",
                json,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let records: Json =
            serde_json::from_slice(&std::fs::read(dir.path().join(json)).unwrap()).unwrap();
        maps.push(records[0]["cam"]["values"].clone());
    }
    assert!(
        maps[0].as_array().is_some_and(|v| v.len() == 16),
        "{:?}",
        maps[0]
    );
    assert_eq!(maps[0], maps[1]);
}

/// eval's rows of `out` (under `dir`).
/// Each row's (image, class, target).
fn image_class_target(rows: &[Json]) -> Vec<(&str, &str, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["image"].as_str().unwrap(),
                r["class"].as_str().unwrap(),
                r["target"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn eval_rows(dir: &Path, out: &str) -> Vec<Json> {
    std::fs::read_to_string(dir.join(out).join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn eval_reads_imagenet_and_labelled_folders() {
    let dir = tempfile::tempdir().unwrap();
    let photos = Path::new(&voc_mini()).join("JPEGImages");
    // ImageNet's Kaggle layout: two images, a bad line.
    let imagenet = dir.path().join("imagenet");
    let val = imagenet.join("ILSVRC/Data/CLS-LOC/val");
    std::fs::create_dir_all(&val).unwrap();
    std::fs::copy(
        photos.join("chelsea.jpg"),
        val.join("ILSVRC2012_val_00000001.JPEG"),
    )
    .unwrap();
    std::fs::copy(
        photos.join("coffee.jpg"),
        val.join("ILSVRC2012_val_00000002.JPEG"),
    )
    .unwrap();
    std::fs::write(
        imagenet.join("LOC_val_solution.csv"),
        "ImageId,PredictionString\n\
         ILSVRC2012_val_00000001,n02123045 60 20 400 300 n02123045 300 10 450 200 \n\
         ILSVRC2012_val_00000002,n07920052 100 50 350 300\n\
         ILSVRC2012_val_00000003,n07920052 1 2 3\n",
    )
    .unwrap();
    let common = [
        "--methods",
        "gradcam",
        "--curve-steps",
        "2",
        "--backend",
        "cpu",
        "--quiet",
    ];
    let run = |data: &Path, out: &str| {
        let args = [
            &["eval", "--data", path(data), "--out", out][..],
            &common[..],
        ]
        .concat();
        let o = igcam(dir.path(), &args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let stdout = run(&imagenet, "in");
    assert!(
        stdout.contains("2 images, 2 explanations; 0 images unreadable, 1 annotations bad"),
        "{stdout}"
    );
    let rows = eval_rows(dir.path(), "in");
    let seen = image_class_target(&rows);
    assert_eq!(
        seen,
        [
            ("ILSVRC2012_val_00000001", "n02123045", 281),
            ("ILSVRC2012_val_00000002", "n07920052", 967)
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r["ebpg"].as_f64().is_some_and(|e| e > 0.0 && e <= 1.0))
    );
    let stats: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("in/stats.json")).unwrap()).unwrap();
    let bad = stats["bad_annotations"][0].as_str().unwrap();
    assert!(
        bad.ends_with("LOC_val_solution.csv line 4: image `ILSVRC2012_val_00000003`: 4 fields where groups of 5 (synset xmin ymin xmax ymax) were expected"),
        "{bad}"
    );

    // A folder of images with labels (an index, a synset), a missing image and a bad line.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("cats")).unwrap();
    std::fs::copy(photos.join("chelsea.jpg"), folder.join("cats/chelsea.jpg")).unwrap();
    std::fs::copy(photos.join("coffee.jpg"), folder.join("coffee.jpg")).unwrap();
    std::fs::write(
        folder.join("labels.csv"),
        "image,label\ncats/chelsea.jpg,285\ncoffee.jpg,n07920052\nmissing.jpg,1\nno label\ncoffee.jpg,1\n",
    )
    .unwrap();
    let stdout = run(&folder, "folder");
    assert!(
        stdout.contains("2 images, 2 explanations; 1 images unreadable, 2 annotations bad"),
        "{stdout}"
    );
    let rows = eval_rows(dir.path(), "folder");
    let seen: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["image"].as_str().unwrap(), r["target"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [("cats/chelsea.jpg", 285), ("coffee.jpg", 967)]);
    for r in &rows {
        // No boxes: no localisation metrics; the faithfulness ones are there.
        assert!(
            r["ebpg"].is_null() && r["bbox"].is_null() && r["pointing"].is_null(),
            "{r}"
        );
        assert!(r["deletion"].as_f64().is_some(), "{r}");
    }

    // No layout: one line naming the four.
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let o = igcam(dir.path(), &["eval", "--data", "empty", "--backend", "cpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("`empty` is no dataset eval knows: it has no Annotations/ (VOC), LOC_val_solution.csv (ImageNet), annotations/instances_*.json (COCO) or labels.csv (a folder of images); see --format"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn eval_and_merge_write_the_html_report() {
    let dir = tempfile::tempdir().unwrap();
    for shard in ["1/2", "2/2"] {
        let out = format!("r{}", &shard[..1]);
        let report = format!("r{}/report.html", &shard[..1]);
        let o = eval(dir.path(), &out, &["--shard", shard, "--report", &report]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            dir.path().join(&report).is_file()
                && dir.path().join(&out).join("gallery.json").is_file()
        );
    }
    let merged = igcam(
        dir.path(),
        &[
            "merge",
            "r1",
            "r2",
            "--out",
            "m",
            "--report",
            "m/report.html",
        ],
    );
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let html = std::fs::read_to_string(dir.path().join("m/report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(
        html.matches("<svg class=\"chart metric\"").count(),
        6,
        "the paper's six tested metrics"
    );
    assert_eq!(html.matches("<svg class=\"chart curve\"").count(), 2);
    // Both methods' galleries, 3 best and 3 worst of the 4 explanations each, from both shards.
    assert_eq!(html.matches("<figure>").count(), 2 * 2 * 3);
    for method in ["igcam", "gradcam"] {
        assert!(html.contains(&format!("<h3>{method}</h3>")), "{method}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from the network"
    );
    // A resumed run or a merge must not mix rows scored with other metric or explanation
    // settings: another tolerance, another baseline.
    let refused_resume = |extra: &[&str]| {
        let args = [&["--shard", "1/2", "--resume"][..], extra].concat();
        let o = eval(dir.path(), "r1", &args);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o.stderr).contains("--resume: `r1` was scored with other settings"),
            "{}",
            text(&o.stderr)
        );
    };
    refused_resume(&["--tolerance", "3"]);
    refused_resume(&["--baseline", "zero"]);
    let o = eval(dir.path(), "r3", &["--shard", "2/2", "--tolerance", "3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mixed = igcam(dir.path(), &["merge", "r1", "r3", "--out", "mixed"]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(
        text(&mixed.stderr).contains("the shards were scored with different settings"),
        "{}",
        text(&mixed.stderr)
    );
    let rows: Vec<Json> = std::fs::read_to_string(dir.path().join("m/rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &rows {
        assert_eq!(
            r["curves"]["deletion"].as_array().unwrap().len(),
            5,
            "4 curve steps: 5 points"
        );
    }
}

/// COCO: found by its `annotations/` folder, classes through coco-to-imagenet, each class's
/// truth the union of its objects' masks (pycocotools' masks, mapped through the resize and
/// crop), bad annotations counted with their reason, a missing image counted as unreadable.
#[test]
fn eval_reads_coco_with_true_masks() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco-mini");
    let out = igcam(
        dir.path(),
        &[
            "eval",
            "--data",
            path(&data),
            "--methods",
            "gradcam",
            "--curve-steps",
            "2",
            "--backend",
            "cpu",
            "--quiet",
            "--npy",
            "--out",
            "coco",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("2 images, 3 explanations; 1 images unreadable, 3 annotations bad"),
        "{stdout}"
    );
    let rows = eval_rows(dir.path(), "coco");
    let seen = image_class_target(&rows);
    assert_eq!(
        seen,
        [
            ("chelsea.jpg", "cat", 285),
            ("coffee.jpg", "cup", 968),
            ("coffee.jpg", "dining table", 532)
        ]
    );
    let stats: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("coco/stats.json")).unwrap())
            .unwrap();
    let bad: Vec<&str> = stats["bad_annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(
        bad[0].ends_with("annotation 31: category 999 is not in categories"),
        "{bad:?}"
    );
    assert!(
        bad[1].ends_with("annotation 32: bbox has 3 values, not 4"),
        "{bad:?}"
    );
    assert_eq!(
        bad[2],
        "chelsea.jpg: annotation 30: a polygon holds 5 coordinates: it needs x, y pairs for at least 3 points; its box is used"
    );
    // The cup's truth is pycocotools' ellipse, not its box: mapped into the 224x224 input it
    // fills about pi/4 of the box.
    let bytes =
        std::fs::read(dir.path().join("coco/maps/coffee.jpg_cup_gradcam.mask.npy")).unwrap();
    let mask: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
    assert_eq!(mask.len(), 224 * 224);
    let fixture = common::json("coco/masks.json");
    let runs = fixture["masks"]["20"]["runs"].as_array().unwrap();
    let source: Vec<bool> = runs
        .iter()
        .flat_map(|r| {
            std::iter::repeat_n(r[0].as_u64() == Some(1), r[1].as_u64().unwrap() as usize)
        })
        .collect();
    let geometry = igcam::preprocess::Geometry::new([600, 400], [224, 224], true);
    let want = geometry.map_mask(&source, [600, 400]);
    assert!(mask.iter().zip(&want).all(|(&m, &w)| (m == 1.0) == w));
    let inside = want.iter().filter(|&&w| w).count() as f64;
    let b = geometry.map_box(igcam::metrics::PixelBox {
        x0: 185,
        y0: 30,
        x1: 406,
        y1: 271,
    });
    let box_area = ((b.x1 - b.x0) * (b.y1 - b.y0)) as f64;
    assert!(
        (inside / box_area - std::f64::consts::FRAC_PI_4).abs() < 0.03,
        "{inside} of {box_area}"
    );
}
