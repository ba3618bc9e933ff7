//! `igcam-wgpu bench`: warm-up, then synchronised timings per method on one backend; with
//! `--together`, the whole method list × targets as one request; with `--profile`, where the
//! time goes (per ONNX op type and per explanation phase).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use igcam::cam::Method;
use igcam::onnx::profile::Profile;
use igcam::{Explainer, Request};
use image::DynamicImage;
use serde::Serialize;

use crate::args::{self, CommonArgs};
use crate::{assets, clock, output, peak};

/// Arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Image to explain. Default: the bundled cat photo.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Targets, comma-separated: top1, topK, class indices or labels.
    #[arg(long, value_delimiter = ',', default_value = "top1")]
    target: Vec<String>,
    /// Timed repetitions per row (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also time all methods × all targets as one request (one set of path passes), and the
    /// first method on the first target alone, and print how the two compare.
    #[arg(long)]
    together: bool,
    /// After the timings, run each row once more with per-op and per-phase timing and print
    /// where the time goes.
    #[arg(long)]
    profile: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

/// One row's timings.
#[derive(Serialize)]
struct MethodTiming {
    method: String,
    median_ms: f64,
    p90_ms: f64,
    images_per_s: f64,
    reps: usize,
    maps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Profile>,
    /// The forward convolutions' multiply-adds in the profiled run (CPU kernels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    conv_multiply_adds: Option<u64>,
}

/// The JSON `bench` and `bench/torch_reference.py` both print.
#[derive(Serialize)]
struct BenchReport {
    tool: &'static str,
    backend: String,
    device: String,
    model: String,
    layer: String,
    steps: usize,
    batch: usize,
    targets: Vec<usize>,
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

/// One timed configuration: a name and its methods.
struct Row {
    name: String,
    methods: Vec<Method>,
    targets: Vec<usize>,
}

/// One timed run: the photo through the network once (top-k, the plain CAM maps' pass), then
/// the request, ending with the maps read back (so all device work is inside the timing).
fn run_once(explainer: &Explainer, image: &DynamicImage, request: &Request) -> Result<usize> {
    let prepared = explainer.prepare(image)?;
    Ok(explainer.explain(&prepared, request, &mut |_, _| {})?.len())
}

fn time_row(
    args: &BenchArgs,
    explainer: &Explainer,
    image: &DynamicImage,
    row: &Row,
) -> Result<MethodTiming> {
    let mut request = args.common.request(row.targets.clone());
    request.methods = row.methods.clone();
    // Warm-up: kernel compilation and allocations.
    let maps = run_once(explainer, image, &request)?;
    let mut times = Vec::with_capacity(args.reps);
    for _ in 0..args.reps {
        let start = clock::now_ms();
        run_once(explainer, image, &request)?;
        times.push(clock::now_ms() - start);
    }
    times.sort_by(f64::total_cmp);
    let (profile, conv_multiply_adds) = if args.profile {
        igcam::work::take_multiply_adds();
        explainer.model().start_profile(clock::now_ms);
        let result = run_once(explainer, image, &request);
        let profile = explainer.model().finish_profile();
        result?;
        let macs = igcam::work::take_multiply_adds();
        (Some(profile), (macs > 0).then_some(macs))
    } else {
        (None, None)
    };
    let median = percentile(&times, 50.0);
    Ok(MethodTiming {
        method: row.name.clone(),
        median_ms: median,
        p90_ms: percentile(&times, 90.0),
        images_per_s: 1000.0 / median,
        reps: args.reps,
        maps,
        profile,
        conv_multiply_adds,
    })
}

fn print_profile(name: &str, p: &Profile, macs: Option<u64>) {
    let total: f64 = p.ops.values().map(|e| e.ms).sum();
    println!("\nprofile of one `{name}` run: ONNX ops (sum {total:.1} ms)");
    println!("| op | calls | ms | share |\n|---|---|---|---|");
    for (op, e) in Profile::sorted(&p.ops) {
        println!(
            "| {op} | {} | {:.1} | {:.1}% |",
            e.calls,
            e.ms,
            100.0 * e.ms / total.max(1e-9)
        );
    }
    println!("\nslowest nodes");
    println!("| node | calls | ms |\n|---|---|---|");
    for (node, e) in Profile::sorted(&p.nodes).into_iter().take(15) {
        println!("| {node} | {} | {:.1} |", e.calls, e.ms);
    }
    println!("\nphases (an op's time is inside its phase)");
    println!("| phase | calls | ms |\n|---|---|---|");
    for (phase, e) in Profile::sorted(&p.phases) {
        println!("| {phase} | {} | {:.1} |", e.calls, e.ms);
    }
    if let Some(macs) = macs {
        print_throughput(p, macs);
    }
    let kernels = igcam::isa::kernels_run();
    if !kernels.is_empty() {
        println!("\nCPU kernels and the instruction set each ran with");
        println!("| kernel | ISA |\n|---|---|");
        for (kernel, isa) in kernels {
            println!("| {kernel} | {} |", isa.name());
        }
    }
}

/// The convolutions' achieved GFLOP/s, in their own time and over the backbone pass, and the
/// share of the CPU's peak each reaches.
fn print_throughput(p: &Profile, macs: u64) {
    let flop = 2.0 * macs as f64;
    let conv_ms: f64 = p
        .ops
        .iter()
        .filter(|(op, _)| op.split('+').any(|part| part == "Conv"))
        .map(|(_, e)| e.ms)
        .sum();
    let backbone_ms = p.phases.get("forward to layer").map(|e| e.ms);
    let peak = peak::peak_gflops();
    let rate = |ms: f64| {
        let gflops = flop / (ms.max(1e-9) * 1e6);
        match &peak {
            Some((peak, _)) => {
                format!("{gflops:.0} GFLOP/s, {:.0}% of peak", 100.0 * gflops / peak)
            }
            None => format!("{gflops:.0} GFLOP/s"),
        }
    };
    println!(
        "\nconvolutions: {:.1} GFLOP (2 per multiply-add of the direct method) in {conv_ms:.1} ms: {}",
        flop / 1e9,
        rate(conv_ms)
    );
    if let Some(ms) = backbone_ms {
        println!(
            "the same over the passes to the layer ({ms:.1} ms): {}",
            rate(ms)
        );
    }
    if let Some((peak, how)) = peak {
        println!("peak {peak:.0} GFLOP/s = {how}");
    }
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    args.common.path.check()?;
    if args.reps == 0 {
        anyhow::bail!("--reps must be at least 1");
    }
    let loaded = args::load(&args.common, false)?;
    let explainer = &loaded.explainer;
    let bytes = match &args.image {
        Some(p) => output::read(p)?,
        None => assets::DEFAULT_IMAGE.to_vec(),
    };
    let image = args.common.image.decode(&bytes, "image")?;
    let targets = explainer.resolve_targets(&explainer.prepare(&image)?, &args.target)?;
    let mut rows: Vec<Row> = Vec::new();
    let methods = args.common.path.methods();
    let first = methods[0];
    if args.together && targets.len() > 1 {
        // The single map the one-pass request is compared with.
        rows.push(Row {
            name: format!("{} x 1 target", first.label(args.common.path.integrate)),
            methods: vec![first],
            targets: vec![targets[0]],
        });
    }
    rows.extend(methods.iter().map(|&m| Row {
        name: m.label(args.common.path.integrate),
        methods: vec![m],
        targets: targets.clone(),
    }));
    if args.together {
        rows.push(Row {
            name: format!(
                "together: {} x {} targets",
                methods
                    .iter()
                    .map(|m| m.label(args.common.path.integrate))
                    .collect::<Vec<_>>()
                    .join("+"),
                targets.len()
            ),
            methods: methods.clone(),
            targets: targets.clone(),
        });
    }
    let results = rows
        .iter()
        .map(|row| time_row(&args, explainer, &image, row))
        .collect::<Result<Vec<_>>>()?;
    let report = BenchReport {
        tool: "igcam",
        backend: loaded.backend.name.into(),
        device: loaded.backend.description.clone(),
        model: loaded.model_name.clone(),
        layer: explainer.layer().into(),
        steps: args.common.path.steps,
        batch: explainer.batch(),
        targets,
        results,
        peak_rss_mb: peak_rss_mb(),
    };
    println!(
        "{} on {} ({}), layer {}, m = {}, batch {}, targets {:?}",
        report.model,
        report.backend,
        report.device,
        report.layer,
        report.steps,
        report.batch,
        report.targets
    );
    // Each row's time against Grad-CAM's, where Grad-CAM was timed alone.
    let gradcam = report
        .results
        .iter()
        .find(|r| r.method == "gradcam")
        .map(|r| r.median_ms);
    let ratio_head = if gradcam.is_some() {
        " vs gradcam |"
    } else {
        ""
    };
    let ratio_rule = if gradcam.is_some() { "---|" } else { "" };
    println!(
        "| method | maps | median ms | p90 ms | images/s |{ratio_head}\n|---|---|---|---|---|{ratio_rule}"
    );
    for r in &report.results {
        let ratio = gradcam.map_or(String::new(), |g| format!(" {:.2}x |", r.median_ms / g));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} |{ratio}",
            r.method, r.maps, r.median_ms, r.p90_ms, r.images_per_s
        );
    }
    if args.together
        && let (Some(one), Some(all)) = (report.results.first(), report.results.last())
    {
        println!(
            "{} maps in one request: {:.2}x the time of {} ({} map{})",
            all.maps,
            all.median_ms / one.median_ms,
            one.method,
            one.maps,
            if one.maps == 1 { "" } else { "s" }
        );
    }
    for r in &report.results {
        if let Some(p) = &r.profile {
            print_profile(&r.method, p, r.conv_multiply_adds);
        }
    }
    if let Some(mb) = report.peak_rss_mb {
        println!("peak process memory: {mb:.0} MiB");
    }
    if let Some(path) = &args.json {
        output::write(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
