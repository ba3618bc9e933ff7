//! `igcam-wgpu bench`: warm-up, then synchronised timings per method on one backend.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use igcam::cam::{self, Method, PathRun};
use igcam::preprocess::{self, Baseline, Preset};
use serde::Serialize;

use crate::assets;
use crate::backend::{self, BackendChoice};
use crate::output;

/// Arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// ONNX classifier. Default: the embedded ImageNet EfficientNet-Lite0.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Image to explain. Default: the bundled cat photo.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "igcam,gradcam")]
    methods: Vec<String>,
    /// Path steps m for integrated methods.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Path steps per chunk. Default: 10 at 224x224.
    #[arg(long)]
    batch: Option<usize>,
    /// Timed repetitions per method (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "wgpu")]
    backend: BackendChoice,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One method's timings.
#[derive(Serialize)]
struct MethodTiming {
    method: String,
    median_ms: f64,
    p90_ms: f64,
    images_per_s: f64,
    reps: usize,
}

/// The JSON `bench` and `bench/torch_reference.py` both print.
#[derive(Serialize)]
struct BenchReport {
    tool: &'static str,
    backend: String,
    device: String,
    model: String,
    steps: usize,
    batch: usize,
    results: Vec<MethodTiming>,
    peak_rss_mb: Option<f64>,
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.reps == 0 || args.steps == 0 || args.batch == Some(0) {
        bail!("--reps, --steps and --batch must be at least 1");
    }
    let methods = Method::parse_list(&args.methods)?;
    let backend = backend::open(args.backend);
    let (model, model_name) = output::load_model(args.model.as_deref(), &backend.device)?;
    let layer = model
        .default_layer()
        .ok_or_else(|| anyhow::anyhow!("the model has no 4-D activation to explain"))?;
    let bytes = match &args.image {
        Some(p) => output::read(p)?,
        None => assets::DEFAULT_IMAGE.to_vec(),
    };
    let size = model.input_size();
    let photo = preprocess::fit(&preprocess::decode(&bytes)?, size, true);
    let device = &backend.device;
    let (x, b) = igcam::input_pair(&photo, Preset::Imagenet, Baseline::Black, device);
    let target = igcam::labels::resolve_target("top1", &igcam::logits(&model, &x)?, &[])?;
    let batch = output::default_batch(&model, args.batch);
    let mut results = Vec::new();
    for method in methods {
        let alphas = cam::path_alphas(method, false, args.steps)?;
        let run = PathRun {
            model: &model,
            input: &x,
            baseline: &b,
            target,
            alphas: &alphas,
            batch,
        };
        // Warm-up: kernel compilation and allocations. Each run ends by reading the map back,
        // so the timings include all device work.
        cam::explain(&run, method, &layer, &mut |_, _| {})?;
        let mut times: Vec<f64> = (0..args.reps)
            .map(|_| {
                let start = Instant::now();
                cam::explain(&run, method, &layer, &mut |_, _| {})
                    .map(|_| start.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<igcam::Result<_>>()?;
        times.sort_by(f64::total_cmp);
        let median = percentile(&times, 50.0);
        results.push(MethodTiming {
            method: method.name().into(),
            median_ms: median,
            p90_ms: percentile(&times, 90.0),
            images_per_s: 1000.0 / median,
            reps: args.reps,
        });
    }
    let report = BenchReport {
        tool: "igcam",
        backend: backend.name.into(),
        device: backend.description.clone(),
        model: model_name,
        steps: args.steps,
        batch,
        results,
        peak_rss_mb: peak_rss_mb(),
    };
    println!(
        "{} on {} ({}), m = {}, batch {}",
        report.model, report.backend, report.device, report.steps, report.batch
    );
    println!("| method | median ms | p90 ms | images/s |\n|---|---|---|---|");
    for r in &report.results {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} |",
            r.method, r.median_ms, r.p90_ms, r.images_per_s
        );
    }
    if let Some(mb) = report.peak_rss_mb {
        println!("peak process memory: {mb:.0} MiB");
    }
    if let Some(path) = &args.json {
        output::write(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
