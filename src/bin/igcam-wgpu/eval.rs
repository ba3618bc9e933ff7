//! `igcam-wgpu eval`: the paper's metrics (and Deletion/Insertion, pointing game) over a
//! PASCAL-VOC-layout dataset, with shards for fanning out over machines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use igcam::cam::{self, CamMap, Method, PathRun};
use igcam::data::{ClassMap, parse_annotation};
use igcam::metrics::summary::{self, Row};
use igcam::metrics::{
    Confidence, FaithfulnessInput, bbox_accuracy, boxes_mask, ebpg, pointing_hit,
};
use igcam::preprocess::{self, Baseline, Geometry, Preset};
use igcam::render;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::backend::{self, BackendChoice};
use crate::output;

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Dataset root with `JPEGImages/`, `Annotations/` and `ImageSets/Main/<split>.txt`.
    #[arg(long)]
    data: PathBuf,
    /// ONNX classifier. Default: the embedded ImageNet EfficientNet-Lite0.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Class map: voc20, imagenet, voc-to-imagenet, or a file of `name index[,index...]` lines.
    #[arg(long, default_value = "voc-to-imagenet")]
    classes: String,
    /// Methods, comma-separated: igcam, gradcam, gradcampp, xgradcam, layercam, ig.
    #[arg(long, value_delimiter = ',', default_value = "igcam,gradcam,gradcampp")]
    methods: Vec<String>,
    /// Integrate the CAM methods along the path.
    #[arg(long)]
    integrate: bool,
    /// Path steps m for integrated methods.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Images per forward chunk (path steps and metric images). Default: 10 at 224x224.
    #[arg(long)]
    batch: Option<usize>,
    /// ONNX tensor to explain. Default: the last activation of the last convolutional block.
    #[arg(long)]
    layer: Option<String>,
    /// Which `ImageSets/Main/<split>.txt` to read (all annotations when it is missing).
    #[arg(long, default_value = "test")]
    split: String,
    /// Only the first N images of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Run shard k of n (1-based, `k/n`): images whose position in the split is k-1 modulo n.
    #[arg(long)]
    shard: Option<String>,
    /// Class confidence for Drop/Increase and the curves: softmax, sigmoid (multi-label), logit.
    #[arg(long, default_value = "softmax")]
    score: String,
    /// Pixel normalisation: imagenet, raw01 or caffe.
    #[arg(long, default_value = "imagenet")]
    preprocess: String,
    /// Steps of the Deletion and Insertion curves (1/N of the pixels per step).
    #[arg(long, default_value_t = 16)]
    curve_steps: usize,
    /// Pointing-game tolerance in pixels.
    #[arg(long, default_value_t = 15.0)]
    tolerance: f64,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "wgpu")]
    backend: BackendChoice,
    /// Output folder: rows.jsonl, stats.json, summary.csv.
    #[arg(long, default_value = "igcam-eval")]
    out: PathBuf,
    /// Also write, per explanation, the map the metrics were computed on (upsampled, min-max
    /// normalised) and the class mask as .npy files under `OUT/maps/`.
    #[arg(long)]
    npy: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// What an evaluation run saw besides its rows; summed by `merge`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Images evaluated.
    pub images: usize,
    /// Images that could not be read or decoded, with the reason.
    pub failed_images: Vec<String>,
    /// Annotations that could not be read or parsed, with the reason.
    pub bad_annotations: Vec<String>,
    /// Objects whose class has no entry in the class map (per class: count).
    pub skipped_objects: std::collections::BTreeMap<String, usize>,
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let parsed = s
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Ok((k, n)),
        _ => bail!("--shard `{s}` must be k/n with 1 <= k <= n, e.g. 2/4"),
    }
}

fn image_ids(data: &Path, split: &str) -> Result<Vec<String>> {
    let list = data.join("ImageSets/Main").join(format!("{split}.txt"));
    if list.is_file() {
        let text = fs::read_to_string(&list)
            .with_context(|| format!("cannot read `{}`", list.display()))?;
        return Ok(text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect());
    }
    let dir = data.join("Annotations");
    let mut ids: Vec<String> = fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "`{}` is not a VOC dataset: no `{}` and no readable Annotations/",
                data.display(),
                list.display()
            )
        })?
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "xml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

fn find_image(data: &Path, id: &str) -> Option<PathBuf> {
    ["jpg", "jpeg", "png", "JPEG", "JPG", "PNG"]
        .iter()
        .map(|e| data.join("JPEGImages").join(format!("{id}.{e}")))
        .find(|p| p.is_file())
}

fn class_map(spec: &str) -> Result<ClassMap> {
    if let Some(m) = ClassMap::builtin(spec) {
        return Ok(m);
    }
    let text = fs::read_to_string(spec).with_context(|| {
        format!(
            "--classes `{spec}` is neither voc20, imagenet, voc-to-imagenet nor a readable file"
        )
    })?;
    Ok(ClassMap::parse(&text)?)
}

/// Writes rows, stats and the summary CSV into `dir`, and prints the table and the counts.
pub fn report(dir: &Path, rows: &[Row], stats: &Stats) -> Result<()> {
    let mut jsonl = String::new();
    for r in rows {
        jsonl += &(serde_json::to_string(r)? + "\n");
    }
    output::write(&dir.join("rows.jsonl"), jsonl.as_bytes())?;
    output::write(
        &dir.join("stats.json"),
        serde_json::to_string_pretty(stats)?.as_bytes(),
    )?;
    let table = summary::summarise(rows);
    output::write(&dir.join("summary.csv"), summary::csv(&table).as_bytes())?;
    print!("{}", summary::markdown(&table));
    let skipped: usize = stats.skipped_objects.values().sum();
    println!(
        "\n{} images, {} explanations; {} images unreadable, {} annotations bad, {} objects skipped (no class-map entry: {})",
        stats.images,
        rows.len(),
        stats.failed_images.len(),
        stats.bad_annotations.len(),
        skipped,
        stats
            .skipped_objects
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for f in stats.failed_images.iter().chain(&stats.bad_annotations) {
        println!("  skipped: {f}");
    }
    println!(
        "wrote {}",
        dir.join("{rows.jsonl, stats.json, summary.csv}").display()
    );
    Ok(())
}

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1 (the paper uses 50)");
    }
    if args.batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let methods = Method::parse_list(&args.methods)?;
    let preset = Preset::parse(&args.preprocess)?;
    let confidence = Confidence::parse(&args.score)?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let classes = class_map(&args.classes)?;
    let mut ids = image_ids(&args.data, &args.split)?;
    if let Some(limit) = args.limit {
        ids.truncate(limit);
    }
    if let Some((k, n)) = shard {
        ids = ids
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k - 1)
            .map(|(_, id)| id)
            .collect();
    }
    output::prepare_dir(&args.out)?;
    if args.npy {
        output::prepare_dir(&args.out.join("maps"))?;
    }
    let backend = backend::open(args.backend);
    let (model, model_name) = output::load_model(args.model.as_deref(), &backend.device)?;
    classes.check(model.num_classes())?;
    let layer = match &args.layer {
        Some(l) => l.clone(),
        None => model
            .default_layer()
            .context("the model has no 4-D activation to explain; pass --layer")?,
    };
    model.layer_shape(&layer)?;
    let size = model.input_size();
    let batch = output::default_batch(&model, args.batch);
    if !args.quiet {
        eprintln!(
            "backend: {} ({}); model: {model_name}; layer: {layer}; {} images",
            backend.name,
            backend.description,
            ids.len()
        );
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(ids.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {elapsed_precise} eta {eta}")
            .expect("static template"),
    );

    let device = &backend.device;
    let black = preprocess::baseline(Baseline::Black, preset, size);
    let b = igcam::image_tensor(black.clone(), size, device);
    let mut rows = Vec::new();
    let mut stats = Stats::default();
    for id in &ids {
        bar.inc(1);
        let xml_path = args.data.join("Annotations").join(format!("{id}.xml"));
        let annotation = match fs::read_to_string(&xml_path)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(parse_annotation(&t)?))
        {
            Ok(a) => a,
            Err(e) => {
                stats
                    .bad_annotations
                    .push(format!("{}: {e}", xml_path.display()));
                continue;
            }
        };
        let decoded = find_image(&args.data, id)
            .with_context(|| format!("no JPEGImages/{id}.jpg or .png"))
            .and_then(|p| Ok(preprocess::decode(&output::read(&p)?)?));
        let image = match decoded {
            Ok(i) => i,
            Err(e) => {
                stats.failed_images.push(format!("{id}: {e:#}"));
                continue;
            }
        };
        stats.images += 1;
        let geometry = Geometry::new([image.width(), image.height()], size, true);
        let photo = preprocess::fit(&image, size, true);
        let chw = preprocess::normalise(&photo, preset);
        let blurred = preprocess::normalise(&image::imageops::blur(&photo, 5.0), preset);
        let x = igcam::image_tensor(chw.clone(), size, device);
        let logits = igcam::logits(&model, &x)?;
        let faith = FaithfulnessInput {
            model: &model,
            image: &chw,
            black: &black,
            blurred: &blurred,
            size,
            batch,
            confidence,
        };
        for class in annotation.classes() {
            let Some(outputs) = classes.lookup(class) else {
                *stats.skipped_objects.entry(class.to_string()).or_default() += 1;
                continue;
            };
            let target = *outputs
                .iter()
                .max_by(|&&a, &&b| logits[a].total_cmp(&logits[b]))
                .expect("non-empty entry");
            let boxes: Vec<_> = annotation
                .boxes(class)
                .into_iter()
                .map(|bx| geometry.map_box(bx))
                .collect();
            let mask = boxes_mask(&boxes, size[0], size[1]);
            for &method in &methods {
                let alphas = cam::path_alphas(method, args.integrate, args.steps)?;
                let run = PathRun {
                    model: &model,
                    input: &x,
                    baseline: &b,
                    target,
                    alphas: &alphas,
                    batch,
                };
                let start = Instant::now();
                let map = cam::explain(&run, method, &layer, &mut |_, _| {})?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                let up = render::upsample_bilinear(&map, size[0], size[1]);
                let norm = render::normalise_min_max(&up.values);
                let f = faith.score(&norm, target, args.curve_steps)?;
                let label = method.label(args.integrate);
                if args.npy {
                    let stem = format!("{id}_{class}_{label}");
                    let maps = args.out.join("maps");
                    let map = CamMap {
                        height: size[0],
                        width: size[1],
                        values: norm.clone(),
                    };
                    output::write_npy(&maps.join(format!("{stem}.map.npy")), &map)?;
                    let mask = CamMap {
                        height: size[0],
                        width: size[1],
                        values: mask.iter().map(|&m| f32::from(u8::from(m))).collect(),
                    };
                    output::write_npy(&maps.join(format!("{stem}.mask.npy")), &mask)?;
                }
                rows.push(Row {
                    image: id.clone(),
                    class: class.to_string(),
                    target,
                    method: label,
                    ebpg: ebpg(&norm, &mask),
                    bbox: bbox_accuracy(&norm, &mask),
                    drop: f.drop,
                    increase: f.increase,
                    deletion: f.deletion,
                    insertion: f.insertion,
                    pointing: pointing_hit(&norm, &mask, size[1], args.tolerance),
                    ms,
                });
            }
        }
    }
    bar.finish_and_clear();
    report(&args.out, &rows, &stats)
}
