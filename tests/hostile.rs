//! Hostile input: every file of the committed seed corpus (`fuzz/corpus/`, written by
//! `fuzz/make_corpus.py`), special files and extreme options go through the CLI under a 2 GiB
//! address-space limit. Each run must end by itself within 10 s (times `IGCAM_TIME_SCALE`) with exit 0, or exit 2 and
//! exactly one `error:` line; no signal (an abort is SIGABRT), no panic. Then the promises
//! about results: eval keeps finished rows, resumes, and merge reads its own NaN rows.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The address-space limit of every child.
const MEMORY_LIMIT: u64 = 2 << 30;
/// The longest a run may take on an idle machine (times [`common::time_scale`]).
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// [`TIME_LIMIT`], scaled for a loaded machine.
fn time_limit() -> Duration {
    TIME_LIMIT * common::time_scale()
}

/// The CLI under test: the test build's, or `IGCAM_BIN` (scripts/hostile-abort.sh points it at
/// a build with `panic = "abort"`, where any panic would kill the process, as in the browser).
fn binary() -> PathBuf {
    std::env::var_os("IGCAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_igcam-wgpu")))
}

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "corpus `{kind}` is missing");
    files
}

fn manifest(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

/// What a run did.
struct Run {
    code: i32,
    stderr: String,
    stdout: String,
}

/// Runs the CLI in `dir` under the memory limit; fails the test on a signal, a hang, a panic
/// or an exit-2 run that does not print exactly one error line.
fn run(dir: &Path, args: &[&str]) -> Run {
    run_with(dir, args, &[])
}

/// [`run`] with environment variables set.
fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(binary());
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = command.spawn().expect("the binary starts");
    // Drain both pipes while the child runs, so a long output cannot block it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                p.read_to_end(&mut text).unwrap();
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > 3 * time_limit() {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{args:?}: still running after {:?}", 3 * time_limit());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    let Some(code) = status.code() else {
        panic!("{args:?}: killed by a signal ({status}); stderr: {stderr}");
    };
    assert!(elapsed < time_limit(), "{args:?}: took {elapsed:?}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    assert!(code == 0 || code == 2, "{args:?}: exit {code}; {stderr}");
    if code == 2 {
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("notice:") && !l.starts_with("backend:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr:?}");
        assert!(errors[0].starts_with("error: "), "{args:?}: {stderr:?}");
    }
    Run {
        code,
        stderr,
        stdout,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs and expects exit 2 with `needle` in the error line.
fn refused(dir: &Path, args: &[&str], needle: &str) {
    let r = run(dir, args);
    assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "{args:?}: `{needle}` not in {:?}",
        r.stderr
    );
}

/// `layers` refuses each `(file in folder, needle)`.
fn layers_refuse(dir: &Path, folder: &str, cases: &[(&str, &str)]) {
    for (name, needle) in cases {
        let model = manifest(&format!("{folder}/{name}"));
        refused(dir, &["layers", &model], needle);
    }
}

#[test]
fn every_corpus_model_loads_or_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let image = manifest("tests/fixtures/nets/resnet_tiny_input.png");
    let mut accepted = Vec::new();
    for model in corpus("onnx") {
        let m = s(&model);
        let layers = run(dir.path(), &["layers", m]);
        let explain = run(
            dir.path(),
            &[
                "explain",
                &image,
                "--model",
                m,
                "--backend",
                "cpu",
                "--steps",
                "2",
                "--quiet",
                "--out",
                "out",
            ],
        );
        if layers.code != 0 {
            assert_eq!(explain.code, 2, "{m}: loads in explain but not in layers");
        }
        if explain.code == 0 {
            accepted.push(model.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    // Only the well-formed models load (the 1000x1000 max pooling is one, within the work
    // budget: found by the fuzzer taking 16 s, it must load and explain within the time limit).
    assert_eq!(
        accepted,
        [
            "found_maxpool_kernel_1000.onnx",
            "side_branch.onnx",
            "tiny_ok.onnx"
        ]
    );
}

/// A valid model whose one map holds 64 M values per image gets chunks of one path point by
/// default (10 would be 2.5 GB for that map alone); real CNNs keep their 10.
#[test]
fn a_model_with_huge_activations_gets_small_default_chunks() {
    let load = |rel: &str| {
        let bytes = std::fs::read(manifest(rel)).unwrap();
        igcam::onnx::OnnxModel::from_bytes(&bytes, &burn::tensor::Device::flex()).unwrap()
    };
    let big = load("fuzz/corpus/onnx_large/big_activation.onnx");
    assert_eq!(big.largest_activation(), 4 * 4000 * 4000);
    assert_eq!(big.default_chunk(), 1);
    let resnet = load("tests/fixtures/nets/resnet_tiny.onnx");
    assert_eq!(
        resnet.default_chunk(),
        igcam::budget::default_chunk([128, 128])
    );
}

#[test]
fn the_refusals_name_the_problem_and_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let m = |name: &str| manifest(&format!("fuzz/corpus/onnx/{name}"));
    let cases: &[(&str, &str)] = &[
        (
            "input_100000sq.onnx",
            "model input `x`: a tensor of shape [1, 3, 100000, 100000] would hold 30000000000 values, over the limit of 67108864 per image",
        ),
        (
            "input_dims_overflow.onnx",
            "would hold more than 2^64 values",
        ),
        (
            "conv_pads_100000.onnx",
            "ONNX node `c` (Conv): a tensor of shape [1, 4, 200006, 200006]",
        ),
        (
            "pad_100000.onnx",
            "ONNX node `p` (Pad): a tensor of shape [1, 3, 200008, 200008]",
        ),
        (
            "avgpool_pads_100000.onnx",
            "ONNX node `a` (AveragePool): a tensor of shape [1, 3, 200006, 200006]",
        ),
        (
            "constant_of_shape_huge.onnx",
            "ONNX node `k` (ConstantOfShape): a tensor of shape [1, 4, 100000, 100000]",
        ),
        ("classes_1e8.onnx", "raise IGCAM_MAX_TENSOR_ELEMENTS"),
        (
            "matmul_batch_from_weight.onnx",
            "ONNX node `m` (MatMul): a tensor of shape [16384, 1, 64, 1024] would hold 1073741824 values",
        ),
        (
            "concat_repeated.onnx",
            "ONNX node `cat` (Concat): a tensor of shape [1, 4000, 222, 222] would hold 197136000 values",
        ),
        (
            "many_live_tensors.onnx",
            "ONNX node `t4` (Pad): the tensors alive at once would hold 320360704 values, over the limit of 268435456 per image",
        ),
        (
            "split_num_outputs_huge.onnx",
            "ONNX node `a` (Split): num_outputs is 1000000000 but the node has 2 outputs",
        ),
        (
            "broadcast_first_dim.onnx",
            "ONNX node `s` (Add): a tensor of shape [100000, 3, 224, 224] would hold 15052800000 values, over the limit of 67108864 per image",
        ),
        (
            "pool_window_huge.onnx",
            "ONNX node `p` (MaxPool): 3151875 outputs each reading a window of 1000000 values is 3151875000000 multiply-adds per image, over the limit of 100000000000",
        ),
        (
            "classes_2e6.onnx",
            "has 2000000 classes, more than the 1000000",
        ),
        (
            "duplicate_output_names.onnx",
            "its output `c` is also produced by node `c`",
        ),
        (
            "output_ignores_input.onnx",
            "output `y` is a constant that does not depend on the image",
        ),
        (
            "float16_weights.onnx",
            "ONNX data type 10 (float16), which igcam does not read; export the model in float32",
        ),
        (
            "initializer_dims_lie.onnx",
            "tensor `wc` holds 0 values for shape [1000000000, 3, 3, 3]",
        ),
        (
            "add_shape_mismatch.onnx",
            // Checked before Burn's op runs (which would panic: no panic is an error channel).
            "ONNX node `s` (Add): shapes [1, 4, 8, 8] and [1, 3, 8, 8] do not broadcast",
        ),
    ];
    layers_refuse(dir.path(), "fuzz/corpus/onnx", cases);
    // Found by the fuzzer: photos are RGB, so a 53-channel input is refused by name.
    refused(
        dir.path(),
        &[
            "explain",
            &manifest("tests/fixtures/nets/resnet_tiny_input.png"),
            "--model",
            &m("found_53_channels_wide_avgpool.onnx"),
            "--backend",
            "cpu",
        ],
        "input `x` takes 53 channels, and photos have 3 (RGB)",
    );
    // IGCAM_MAX_TENSOR_ELEMENTS raises the limit: the 8000x8000 input passes, and the next
    // tensor over the new limit (the Conv's 4 channels) is refused instead.
    let r = run_with(
        dir.path(),
        &["layers", &m("input_8000sq.onnx")],
        &[("IGCAM_MAX_TENSOR_ELEMENTS", "200000000")],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("ONNX node `c` (Conv): a tensor of shape [1, 4, 8000, 8000] would hold 256000000 values, over the limit of 200000000 per image"),
        "{}",
        r.stderr
    );
    // The parse hint about opsets is only for files that are not ONNX at all.
    let r = run(dir.path(), &["layers", &m("float16_weights.onnx")]);
    assert!(!r.stderr.contains("opset"), "{}", r.stderr);
    refused(
        dir.path(),
        &[
            "explain",
            &manifest("tests/fixtures/nets/resnet_tiny_input.png"),
            "--model",
            &m("side_branch.onnx"),
            "--layer",
            "side",
            "--backend",
            "cpu",
        ],
        "layer `side` does not feed the output `y`",
    );
}

#[test]
fn every_corpus_image_is_explained_or_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = Vec::new();
    for image in corpus("image") {
        let r = run(
            dir.path(),
            &[
                "explain",
                s(&image),
                "--backend",
                "cpu",
                "--method",
                "gradcam",
                "--quiet",
                "--out",
                "out",
            ],
        );
        if r.code == 0 {
            accepted.push(image.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    // A bit flip inside the entropy-coded data cannot be told from a picture.
    assert_eq!(accepted, ["bitflip.jpg", "ok.jpg"]);
    let image = |name: &str| manifest(&format!("fuzz/corpus/image/{name}"));
    refused(
        dir.path(),
        &["explain", &image("strip_1x16384.png"), "--backend", "cpu"],
        "image 1x16384: resizing its shorter side for the centre crop makes it 256x4194304 (1073741824 pixels), over the limit of 67108864 (--max-pixels)",
    );
    refused(
        dir.path(),
        &["explain", &image("truncated_50.jpg"), "--backend", "cpu"],
        "the JPEG is truncated (no end-of-image marker)",
    );
    refused(
        dir.path(),
        &[
            "explain",
            &image("ok.jpg"),
            "--backend",
            "cpu",
            "--max-pixels",
            "1000",
        ],
        "image 128x96: 12288 pixels, over the limit of 1000 (--max-pixels)",
    );
    // --no-crop resizes the whole strip to the input: no budget needed.
    let r = run(
        dir.path(),
        &[
            "explain",
            &image("strip_1x16384.png"),
            "--backend",
            "cpu",
            "--method",
            "gradcam",
            "--no-crop",
            "--quiet",
            "--out",
            "out",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // --lenient explains a truncated JPEG, with a warning.
    let r = run(
        dir.path(),
        &[
            "explain",
            &image("truncated_50.jpg"),
            "--backend",
            "cpu",
            "--method",
            "gradcam",
            "--lenient",
            "--quiet",
            "--out",
            "out",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is a truncated JPEG; its missing part is grey"),
        "{}",
        r.stderr
    );
}

/// A one-image VOC dataset in `dir/voc` with `annotation` as its XML.
fn one_image_voc(dir: &Path, id: &str, annotation: &[u8]) -> PathBuf {
    let data = dir.join("voc");
    for sub in ["JPEGImages", "Annotations"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    std::fs::copy(
        manifest("tests/data/voc-mini/JPEGImages/chelsea.jpg"),
        data.join(format!("JPEGImages/{id}.jpg")),
    )
    .unwrap();
    std::fs::write(data.join(format!("Annotations/{id}.xml")), annotation).unwrap();
    data
}

fn eval_args<'a>(data: &'a str, classes: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "--data",
        data,
        "--classes",
        classes,
        "--methods",
        "gradcam",
        "--curve-steps",
        "2",
        "--backend",
        "cpu",
        "--quiet",
        "--out",
        out,
    ]
}

#[test]
fn every_corpus_annotation_is_scored_or_counted_as_bad() {
    let classes = manifest("tests/data/voc-mini/classes.txt");
    for xml in corpus("voc") {
        let dir = tempfile::tempdir().unwrap();
        let data = one_image_voc(dir.path(), "x", &std::fs::read(&xml).unwrap());
        let r = run(dir.path(), &eval_args(s(&data), &classes, "out"));
        assert_eq!(r.code, 0, "{}: {}", xml.display(), r.stderr);
        let name = xml.file_name().unwrap().to_string_lossy();
        let expected = match name.as_ref() {
            // The annotation's own <size> is not used (the photo's is), so a silly one passes.
            "ok.xml" | "empty_box.xml" | "huge_size.xml" => "1 images, 1 explanations",
            _ => "0 images, 0 explanations; 0 images unreadable, 1 annotations bad",
        };
        assert!(r.stdout.contains(expected), "{name}: {}", r.stdout);
        let stats = std::fs::read_to_string(dir.path().join("out/stats.json")).unwrap();
        assert!(!stats.contains("invalid option"), "{stats}");
        if name == "empty_box.xml" {
            let rows = std::fs::read_to_string(dir.path().join("out/rows.jsonl")).unwrap();
            assert!(rows.contains("\"ebpg\":0.0,"), "{rows}");
        }
    }
}

#[test]
fn special_files_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    let made = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a plain libc call on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(made.as_ptr(), 0o644) }, 0);
    let image = manifest("tests/fixtures/nets/resnet_tiny_input.png");
    let model = manifest("tests/fixtures/nets/resnet_tiny.onnx");
    for special in [s(&fifo), "/dev/zero"] {
        refused(
            dir.path(),
            &["explain", special, "--backend", "cpu"],
            "not a file",
        );
        refused(
            dir.path(),
            &["explain", &image, "--model", special, "--backend", "cpu"],
            "not a file",
        );
        refused(
            dir.path(),
            &[
                "explain",
                &image,
                "--model",
                &model,
                "--labels",
                special,
                "--backend",
                "cpu",
            ],
            "not a file",
        );
    }
    refused(
        dir.path(),
        &[
            "explain",
            &image,
            "--model",
            s(dir.path()),
            "--backend",
            "cpu",
        ],
        "is a folder, not a file",
    );
    // A FIFO as an annotation is counted as a bad annotation, and as rows.jsonl refused.
    let data = one_image_voc(dir.path(), "x", b"");
    std::fs::remove_file(data.join("Annotations/x.xml")).unwrap();
    let xml = std::ffi::CString::new(s(&data.join("Annotations/x.xml"))).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(xml.as_ptr(), 0o644) }, 0);
    let classes = manifest("tests/data/voc-mini/classes.txt");
    let r = run(dir.path(), &eval_args(s(&data), &classes, "out"));
    assert!(r.stdout.contains("1 annotations bad"), "{}", r.stdout);
    let shard = dir.path().join("shard");
    std::fs::create_dir(&shard).unwrap();
    let rows = std::ffi::CString::new(s(&shard.join("rows.jsonl"))).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(rows.as_ptr(), 0o644) }, 0);
    refused(
        dir.path(),
        &["merge", s(&shard), "--out", "m"],
        "named pipe",
    );
}

#[test]
fn extreme_options_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = manifest("tests/data/voc-mini");
    let cases: [(&[&str], &str); 12] = [
        (
            &["explain", "--target=-1", "--backend", "cpu"],
            "target -1 is negative",
        ),
        (
            &["explain", "--steps", "100000", "--backend", "cpu"],
            "--force",
        ),
        (&["explain", "--max-pixels", "0"], "--max-pixels"),
        (
            &["eval", "--data", &data, "--tolerance", "NaN"],
            "--tolerance NaN must be a finite number",
        ),
        (
            &["eval", "--data", &data, "--curve-steps", "0"],
            "--curve-steps must be at least 1",
        ),
        (
            &["eval", "--data", &data, "--fc-runs", "1"],
            "--fc-runs must be at least 2",
        ),
        (
            &["eval", "--data", &data, "--metrics", "road"],
            "error: invalid option: unknown metric `road` in --metrics: use default, all, or some of ebpg,",
        ),
        (
            &[
                "eval",
                "--data",
                &data,
                "--curve-steps",
                "5000",
                "--backend",
                "cpu",
            ],
            "these metrics need 9999 forward passes per explanation at 224x224 (--curve-steps, --flip-step, --regions, --fc-runs, --road-percentiles, --road-accuracy-percentages, --irof-segments), over --max-forwards 2000: lower those or raise --max-forwards",
        ),
        (
            &["explain", "--nonsense"],
            "unexpected argument '--nonsense'",
        ),
        (
            &["eval", "--data", &data, "--ms-radius", "0"],
            "--ms-radius 0 must be a finite number above 0",
        ),
        (
            &["eval", "--data", &data, "--mprt-layers", "0"],
            "--mprt-layers must be at least 1",
        ),
        // The embedded EfficientNet-Lite0 has 50 layers with weights.
        (
            &[
                "eval",
                "--data",
                &data,
                "--metrics",
                "max_sensitivity,mprt",
                "--ms-samples",
                "60",
                "--backend",
                "cpu",
            ],
            "these metrics explain each image 110 more times (--ms-samples 60, mprt 50 layers), over --max-explanations 100: lower --ms-samples or --mprt-layers, or raise --max-explanations",
        ),
    ];
    for (args, needle) in cases {
        refused(dir.path(), args, needle);
    }
}

#[test]
fn eval_keeps_finished_rows_skips_failures_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("voc");
    for sub in ["JPEGImages", "Annotations"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let src = Path::new(&manifest("tests/data/voc-mini")).to_path_buf();
    // An id so long that the --npy map names cannot be created: that image fails alone.
    let long = "l".repeat(240);
    for (id, from) in [
        ("chelsea", "chelsea"),
        ("coffee", "coffee"),
        (long.as_str(), "chelsea"),
    ] {
        for (sub, ext) in [("JPEGImages", "jpg"), ("Annotations", "xml")] {
            std::fs::copy(
                src.join(format!("{sub}/{from}.{ext}")),
                data.join(format!("{sub}/{id}.{ext}")),
            )
            .unwrap();
        }
    }
    let classes = src.join("classes.txt");
    let base = eval_args(s(&data), s(&classes), "out");
    let r = run(dir.path(), &[&base[..], &["--npy"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("2 images, 2 explanations; 1 images unreadable"),
        "{}",
        r.stdout
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/stats.json")).unwrap()).unwrap();
    let failed = stats["failed_images"][0].as_str().unwrap();
    assert!(
        failed.starts_with(&format!("{long}: cannot write")),
        "{failed}"
    );

    // A rerun into the same folder does not overwrite it ...
    refused(dir.path(), &base, "already holds results; pass --resume");
    // ... and --resume skips what is done: a run cut after the first image, then resumed,
    // ends with the rows of one full run.
    let cut: Vec<&str> = base
        .iter()
        .map(|&a| if a == "out" { "cut" } else { a })
        .collect();
    let first = run(dir.path(), &[&cut[..], &["--limit", "1"]].concat());
    assert_eq!(first.code, 0, "{}", first.stderr);
    // A half-written last line (a run killed while writing) is dropped on resume.
    let rows_path = dir.path().join("cut/rows.jsonl");
    let mut rows = std::fs::read_to_string(&rows_path).unwrap();
    rows.push_str("{\"image\":\"cof");
    std::fs::write(&rows_path, rows).unwrap();
    let resumed = run(dir.path(), &[&cut[..], &["--resume"]].concat());
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stdout.contains("3 images, 3 explanations"),
        "{}",
        resumed.stdout
    );
    let images: Vec<String> = std::fs::read_to_string(&rows_path)
        .unwrap()
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            row["image"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(images.len(), 3, "{images:?}");
    assert_eq!(images[0], "chelsea");
}

#[test]
fn merge_reads_nan_metrics_and_refuses_overflowing_counts() {
    let dir = tempfile::tempdir().unwrap();
    let shard = |name: &str, images: &str, rows: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("rows.jsonl"), rows).unwrap();
        std::fs::write(
            d.join("stats.json"),
            format!(r#"{{"images":{images},"failed_images":[],"bad_annotations":[],"skipped_objects":{{}}}}"#),
        )
        .unwrap();
    };
    let row = |image: &str, deletion: &str| {
        format!(
            r#"{{"image":"{image}","class":"cat","target":281,"method":"Grad-CAM","ebpg":0.5,"bbox":0.5,"drop":0.1,"increase":false,"deletion":{deletion},"insertion":0.4,"pointing":true,"ms":1.0}}"#
        ) + "\n"
    };
    shard("a", "1", &row("a", "null"));
    shard("b", "1", &row("b", "0.25"));
    let r = run(dir.path(), &["merge", "a", "b", "--out", "m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("1 metric values are NaN (null in rows.jsonl) and left out of the means"),
        "{}",
        r.stdout
    );
    // The mean deletion AUC is the one finite value.
    assert!(r.stdout.contains("| 0.2500 |"), "{}", r.stdout);
    shard("c", &usize::MAX.to_string(), &row("c", "0.1"));
    shard("d", "1", &row("d", "0.1"));
    refused(
        dir.path(),
        &["merge", "c", "d", "--out", "m2"],
        "counts overflow",
    );
}

#[test]
fn eval_interrupted_by_ctrl_c_still_writes_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = manifest("tests/data/voc-mini");
    let classes = manifest("tests/data/voc-mini/classes.txt");
    // IG-CAM with many steps: slow enough per image to be interrupted in the middle.
    let child = Command::new(binary())
        .args([
            "eval",
            "--data",
            &data,
            "--classes",
            &classes,
            "--methods",
            "igcam",
            "--steps",
            "200",
            "--curve-steps",
            "2",
            "--backend",
            "cpu",
            "--quiet",
            "--out",
            "out",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rows = dir.path().join("out/rows.jsonl");
    let start = Instant::now();
    while std::fs::metadata(&rows).map_or(true, |m| m.len() == 0) {
        assert!(
            start.elapsed() < Duration::from_secs(120) * common::time_scale(),
            "no row written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted after "), "{stderr}");
    assert!(stderr.contains("rerun with --resume to finish"), "{stderr}");
    for f in ["stats.json", "summary.csv"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f} missing");
    }
    let done = std::fs::read_to_string(&rows).unwrap().lines().count();
    assert!((1..5).contains(&done), "{done} rows");
}

#[test]
fn a_model_of_200k_nodes_is_listed_in_seconds() {
    use onnx_ir::{Message, ModelProto};
    // tiny_ok.onnx is Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm; put 200 000 more
    // Relus after the first one (a 6 MB file). Picking the default layer once took minutes.
    let bytes = std::fs::read(manifest("fuzz/corpus/onnx/tiny_ok.onnx")).unwrap();
    let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let relu = graph.node[1].clone();
    let mut chain = Vec::new();
    let mut last = "r".to_string();
    for i in 0..200_000 {
        let mut n = relu.clone();
        n.name = format!("relu{i}");
        n.input = vec![last.clone()];
        last = format!("r{i}");
        n.output = vec![last.clone()];
        chain.push(n);
    }
    graph.node[2].input = vec![last.clone()];
    let tail = graph.node.split_off(2);
    graph.node.extend(chain);
    graph.node.extend(tail);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.onnx");
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    let r = run(dir.path(), &["layers", s(&path)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "default (*): `{last}`, the input of the global pooling"
        )),
        "{}",
        &r.stdout[r.stdout.len().saturating_sub(300)..]
    );
}

#[test]
fn external_data_is_read_only_from_the_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = |name: &str| manifest(&format!("tests/fixtures/external/{name}"));
    let cases: &[(&str, &str)] = &[
        (
            "escape_dotdot.onnx",
            "location `../nets/resnet_tiny.onnx` is not a file inside the model's folder",
        ),
        (
            "escape_absolute.onnx",
            "location `/etc/passwd` is not a file inside the model's folder",
        ),
        ("past_end.onnx", "but the tensor asks for"),
        ("missing_file.onnx", "cannot open external data"),
    ];
    layers_refuse(dir.path(), "tests/fixtures/external", cases);
    // A symlink named like the data file that leads out of the folder.
    std::fs::copy(fixture("resnet_tiny.onnx"), dir.path().join("m.onnx")).unwrap();
    std::os::unix::fs::symlink(
        fixture("resnet_tiny.onnx.data"),
        dir.path().join("resnet_tiny.onnx.data"),
    )
    .unwrap();
    refused(
        dir.path(),
        &["layers", s(&dir.path().join("m.onnx"))],
        "leads out of the model's folder (a symlink); refused",
    );
    // The model alone, its data file not copied along: the hint names torch's switch.
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("resnet_tiny.onnx"), alone.path().join("m.onnx")).unwrap();
    refused(
        dir.path(),
        &["layers", s(&alone.path().join("m.onnx"))],
        "keep it next to the model, or re-export with the weights inside (`torch.onnx.export(..., external_data=False)`)",
    );
}

#[test]
fn outputs_never_overwrite_each_other_or_stay_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let png = manifest("tests/fixtures/nets/resnet_tiny_input.png");
    let jpg = manifest("fuzz/corpus/image/ok.jpg");
    let long = format!("{}.png", "l".repeat(240));
    for (to, from) in [
        ("a/photo.png", &png),
        ("b/photo.png", &png),
        ("cat.png", &png),
        ("cat.jpg", &jpg),
        (long.as_str(), &png),
    ] {
        let to = dir.path().join("in").join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let model = manifest("tests/fixtures/nets/resnet_tiny.onnx");
    let explain = |images: &[&str], extra: &[&str]| {
        let base = [
            "explain",
            "--model",
            &model,
            "--method",
            "gradcam",
            "--backend",
            "cpu",
        ];
        run(
            dir.path(),
            &[&base[..], images, &["--quiet"], extra].concat(),
        )
    };
    // An unwritable --json is found before any work: nothing is written.
    let r = explain(
        &["in/cat.png"],
        &["--out", "early", "--json", "/nonexistent/x.json"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot write `/nonexistent/x.json`"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("early/cat_gradcam.png").exists());
    // Four inputs that share two names give four sets of outputs.
    let r = explain(
        &[
            "in/a/photo.png",
            "in/b/photo.png",
            "in/cat.png",
            "in/cat.jpg",
        ],
        &["--out", "out"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("share a file name").count(),
        2,
        "{}",
        r.stderr
    );
    let mut overlays: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_gradcam.png"))
        .collect();
    overlays.sort();
    assert_eq!(
        overlays,
        [
            "cat_jpg_gradcam.png",
            "cat_png_gradcam.png",
            "in_a_photo_png_gradcam.png",
            "in_b_photo_png_gradcam.png"
        ]
    );
    // A name too long for the file system: one error line, and no partial file left.
    let r = explain(&[&format!("in/{long}")], &["--out", "long"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot write"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("long"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A COCO folder whose instances file is not COCO's, or that holds two candidates: one line.
#[test]
fn broken_coco_annotations_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let coco = dir.path().join("coco");
    std::fs::create_dir_all(coco.join("annotations")).unwrap();
    std::fs::write(
        coco.join("annotations/instances_val.json"),
        b"{\"images\": 3}",
    )
    .unwrap();
    let args = [
        "eval",
        "--data",
        s(&coco),
        "--backend",
        "cpu",
        "--split",
        "val",
    ];
    refused(
        dir.path(),
        &args,
        "is not a COCO instances file (invalid type: integer `3`",
    );
    std::fs::write(coco.join("annotations/instances_train.json"), b"{}").unwrap();
    refused(
        dir.path(),
        &[
            "eval",
            "--data",
            s(&coco),
            "--backend",
            "cpu",
            "--split",
            "val2017",
        ],
        "has no instances_val2017.json; pick one of train, val with --split",
    );
    refused(
        dir.path(),
        &["eval", "--data", s(&coco), "--backend", "cpu"],
        "has no instances_<split>.json; pick one of train, val with --split",
    );
}

/// The dataset seeds of the corpus: every COCO instances file is read by eval (a bad
/// annotation counted, the run going on), every CSV through the layout that reads it.
#[test]
fn dataset_seeds_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let photo = manifest("tests/data/coco-mini/mini/chelsea.jpg");
    for file in corpus("dataset") {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let data = dir.path().join(name.replace('.', "_"));
        let target = if name.starts_with("coco_") {
            std::fs::create_dir_all(data.join("annotations")).unwrap();
            std::fs::copy(&photo, data.join("a.jpg")).unwrap();
            data.join("annotations/instances_x.json")
        } else if name == "loc_solution.csv" {
            std::fs::create_dir_all(&data).unwrap();
            data.join("LOC_val_solution.csv")
        } else {
            std::fs::create_dir_all(&data).unwrap();
            data.join("labels.csv")
        };
        std::fs::copy(&file, &target).unwrap();
        let args = [
            "eval",
            "--data",
            s(&data),
            "--methods",
            "gradcam",
            "--curve-steps",
            "2",
            "--backend",
            "cpu",
            "--quiet",
            "--out",
            "out",
        ];
        let r = run(&data, &args);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let bad = [
            "coco_compressed_rle_wrong_total",
            "coco_odd_polygon",
            "coco_wrapping_counts",
            "coco_far_outline",
            "coco_bad_bbox",
            "loc_solution",
            "labels",
        ];
        let expect_bad = bad.iter().any(|b| name.starts_with(b));
        assert_eq!(
            !r.stdout.contains(" 0 annotations bad"),
            expect_bad,
            "{name}: {}",
            r.stdout
        );
    }
}
