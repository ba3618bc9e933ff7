//! `igcam-wgpu eval`: the paper's metrics (and Deletion/Insertion, pointing game) over a
//! PASCAL-VOC-layout dataset, with shards for fanning out over machines.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use igcam::Explainer;
use igcam::cam::CamMap;
use igcam::data::ClassMap;
use igcam::metrics::boxes_mask;
use igcam::metrics::summary::Row;
use igcam::onnx::randomise::Cascade;
use igcam::reexplain::Redo;
use igcam::scoring::{ScoreOptions, ToScore};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{self, CommonArgs};
use crate::dataset::{Dataset, Format, Found, Item};
use crate::gallery::{self, Gallery, Shot};
use crate::metric_args::MetricArgs;
use crate::output;
use crate::results::{RowsFile, Stats, report, write_stats};
use crate::shard;

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Dataset root: VOC (`JPEGImages/`, `Annotations/`, `ImageSets/Main/<split>.txt`),
    /// ImageNet (`LOC_val_solution.csv`, images under `ILSVRC/Data/CLS-LOC/val/`), COCO
    /// (`annotations/instances_<split>.json`, images under `<split>/`) or a folder of images
    /// with `labels.csv` (`image,label` lines).
    #[arg(long)]
    data: PathBuf,
    /// The dataset's layout (auto: from the files at its root).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Class map: voc20, imagenet, voc-to-imagenet, coco-to-imagenet, or a file of
    /// `name index[,index...]` lines (default: voc-to-imagenet for VOC, coco-to-imagenet for
    /// COCO, imagenet's synsets otherwise; a folder's label may also be a model output index).
    #[arg(long)]
    classes: Option<String>,
    /// Which `ImageSets/Main/<split>.txt` (VOC; default `test`, all annotations when it is
    /// missing) or `annotations/instances_<split>.json` (COCO; default: the only one there).
    #[arg(long)]
    split: Option<String>,
    /// Only the first N images of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Run shard k of n (1-based, `k/n`): images whose position in the split is k-1 modulo n.
    /// `auto`: k and n from a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT); `auto/N`:
    /// from a Kubernetes Indexed Job of N completions (JOB_COMPLETION_INDEX). See docs/scale.md.
    #[arg(long)]
    shard: Option<String>,
    #[command(flatten)]
    metrics: MetricArgs,
    /// Output folder: rows.jsonl, stats.json, summary.csv.
    #[arg(long, default_value = "igcam-eval")]
    out: PathBuf,
    /// Also write, per explanation, the map the metrics were computed on (upsampled, min-max
    /// normalised) and the class mask as .npy files under `OUT/maps/`.
    #[arg(long)]
    npy: bool,
    /// Continue an interrupted run in the same --out folder: images already in its rows.jsonl
    /// are skipped, the rest are scored and appended.
    #[arg(long)]
    resume: bool,
    /// Also write a self-contained HTML report (the summary, a chart per metric, the curves,
    /// the paired comparisons and a gallery of each method's best and worst maps).
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    common: CommonArgs,
}

fn class_map(spec: &str) -> Result<ClassMap> {
    if let Some(m) = ClassMap::builtin(spec) {
        return Ok(m);
    }
    let text = output::read_text(Path::new(spec)).with_context(|| {
        format!(
            "--classes `{spec}` is neither voc20, imagenet, voc-to-imagenet, coco-to-imagenet nor a readable file"
        )
    })?;
    Ok(ClassMap::parse(&text)?)
}

/// Set by Ctrl-C: `eval` stops before the next image and writes its summary.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Catches Ctrl-C (a second one ends the process at once).
fn catch_interrupt() {
    use std::sync::atomic::Ordering;
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}

/// What every image of a run is scored with.
#[derive(Clone, Copy)]
struct Run<'a> {
    args: &'a EvalArgs,
    dataset: &'a Dataset,
    options: &'a ScoreOptions,
    explainer: &'a Explainer,
    classes: &'a ClassMap,
    /// The model's file as MPRT's cascade, read once (when MPRT is asked for).
    cascade: Option<&'a Cascade>,
    bar: &'a ProgressBar,
}

/// Scores one image: one request for every class present × every method, then the metrics,
/// with all faithfulness images of the image through the model together. Returns its rows.
fn score_image(
    run: &Run,
    id: &str,
    item: &Item,
    image: &image::DynamicImage,
    stats: &mut Stats,
    gallery: &mut Option<Gallery>,
) -> Result<Vec<Row>> {
    let Run {
        args,
        options,
        explainer,
        classes,
        ..
    } = *run;
    let size = explainer.model().input_size();
    let prepared = explainer.prepare(image)?;
    let mut wanted = Vec::new();
    let num_classes = explainer.model().num_classes();
    for (class, boxes) in &item.classes {
        // A class-map name, or (a folder's label) a model output index.
        let outputs = match classes.lookup(class) {
            Some(o) => o.to_vec(),
            None => match class.parse::<usize>() {
                Ok(i) if i < num_classes => vec![i],
                _ => {
                    *stats.skipped_objects.entry(class.to_string()).or_default() += 1;
                    continue;
                }
            },
        };
        let target = *outputs
            .iter()
            .max_by(|&&a, &&b| prepared.logits[a].total_cmp(&prepared.logits[b]))
            .expect("non-empty entry");
        // A true mask where the dataset has one (COCO), else the boxes; no boxes (a folder's
        // label): no ground truth, the localisation metrics stay empty.
        let mask = match item.masks.get(class) {
            Some(m) => Some(prepared.geometry.map_mask(&m.pixels, m.size)),
            None => (!boxes.is_empty()).then(|| {
                let boxes: Vec<_> = boxes
                    .iter()
                    .map(|&b| prepared.geometry.map_box(b))
                    .collect();
                boxes_mask(&boxes, size[0], size[1])
            }),
        };
        wanted.push((class.to_string(), target, mask));
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let targets = igcam::dedup::unique(wanted.iter().map(|w| w.1));
    let request = args.common.request(targets);
    let maps = explainer.explain(&prepared, &request, &mut |_, _| {})?;
    // Every (class, method), scored together.
    let mut explained = Vec::new();
    let mut to_score = Vec::new();
    for (class, target, mask) in &wanted {
        for e in maps.iter().filter(|e| e.target == *target) {
            explained.push((class, mask, e));
            to_score.push(ToScore {
                map: &e.map,
                label: &e.label,
                target: e.target,
                mask: mask.as_deref(),
            });
        }
    }
    let status = |what: String| run.bar.set_message(format!("{id}: {what}"));
    let again = Redo {
        request: &request,
        cascade: run.cascade,
        status: Some(&status),
    };
    let scores =
        igcam::scoring::score(explainer, &prepared.photo, &to_score, options, Some(&again))?;
    let mut rows = Vec::new();
    for ((class, mask, e), scored) in explained.into_iter().zip(scores) {
        let (norm, f) = (&scored.map, &scored.faithfulness);
        if let Some(g) = gallery.as_mut()
            && g.wants(&e.label, f.insertion)
        {
            g.add(Shot {
                method: e.label.clone(),
                image: id.to_string(),
                class: class.to_string(),
                insertion: f.insertion,
                png: gallery::overlay_png(&prepared.photo, norm, mask.as_deref())?,
            });
        }
        if args.npy {
            let stem = format!("{id}_{class}_{}", e.label).replace(['/', '\\'], "_");
            let maps = args.out.join("maps");
            let map = CamMap {
                height: size[0],
                width: size[1],
                values: norm.clone(),
            };
            output::write_npy(&maps.join(format!("{stem}.map.npy")), &map)?;
            if let Some(mask) = mask {
                let mask = CamMap {
                    height: size[0],
                    width: size[1],
                    values: mask.iter().map(|&m| f32::from(u8::from(m))).collect(),
                };
                output::write_npy(&maps.join(format!("{stem}.mask.npy")), &mask)?;
            }
        }
        rows.push(Row {
            image: id.to_string(),
            class: class.to_string(),
            target: e.target,
            method: e.label.clone(),
            ebpg: scored.ebpg.unwrap_or(f64::NAN),
            bbox: scored.bbox,
            drop: f.drop,
            increase: f.increase,
            deletion: f.deletion,
            insertion: f.insertion,
            pointing: scored.pointing,
            ms: e.ms,
            extra: scored
                .extra
                .iter()
                .map(|(k, v)| (k.to_string(), Some(*v).filter(|v| !v.is_nan())))
                .collect(),
            curves: [
                ("deletion".to_string(), f.deletion_curve.clone()),
                ("insertion".to_string(), f.insertion_curve.clone()),
            ]
            .into_iter()
            .chain(
                scored
                    .curves
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone())),
            )
            .collect(),
        });
    }
    Ok(rows)
}

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    args.common.path.check()?;
    let options = args.metrics.options(args.common.path.seed)?;
    let env = |name: &str| std::env::var(name).ok();
    let shard = args
        .shard
        .as_deref()
        .map(|s| shard::parse(s, &env))
        .transpose()?;
    let dataset = Dataset::open(&args.data, args.format, args.split.as_deref())?;
    let classes = args
        .classes
        .as_deref()
        .or(dataset.default_classes)
        .map(class_map)
        .transpose()?;
    let mut ids = dataset.ids.clone();
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
    let loaded = args::load(&args.common, false)?;
    let explainer = &loaded.explainer;
    igcam::scoring::check_model(explainer)?;
    // A folder's labels without --classes: ImageNet synsets for a 1000-class model, otherwise
    // output indices only.
    let classes = match classes {
        Some(c) => c,
        None if explainer.model().num_classes() == 1000 => class_map("imagenet")?,
        None => ClassMap(Default::default()),
    };
    classes.check(explainer.model().num_classes())?;
    args.metrics
        .check_budget(&options, explainer.model().input_size())?;
    // MPRT's cascade: the model's file read once for the whole run.
    let cascade = options
        .redo_options()
        .mprt_layers
        .map(|_| Cascade::new(&loaded.file.bytes, loaded.file.external()))
        .transpose()?;
    args.metrics.check_redo_budget(&options, cascade.as_ref())?;
    if !args.quiet {
        eprintln!(
            "backend: {}; model: {}; layer: {}; {} images",
            loaded.backend.label(),
            loaded.model_name,
            explainer.layer(),
            ids.len()
        );
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(ids.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images  {elapsed_precise} eta {eta}  {wide_msg}",
        )
        .expect("static template"),
    );

    let (mut file, mut rows, mut stats) = RowsFile::open(&args.out, args.resume)?;
    // The metric settings and what made the maps: the model, its layer, the explainer's
    // options (preprocessing, baseline, ...) and the request.
    let mut request = args.common.request(Vec::new());
    request.clock = None;
    // The model by file name and size: shards on other machines may hold it at other paths.
    let model_name = std::path::Path::new(&loaded.model_name)
        .file_name()
        .map_or(loaded.model_name.clone(), |n| {
            n.to_string_lossy().into_owned()
        });
    let settings = format!(
        "{} | model={model_name} ({} bytes) layer={} {:?} {request:?}",
        options.describe(),
        loaded.file.bytes.len(),
        explainer.layer(),
        explainer.options()
    );
    match &stats.settings {
        Some(before) if *before != settings => bail!(
            "--resume: `{}` was scored with other settings (`{before}`, now `{settings}`): use the same switches and model, or another --out",
            args.out.display()
        ),
        _ => stats.settings = Some(settings),
    }
    // The dataset's bad lines once, by the first shard (merge adds the shards' counts).
    if shard.is_none_or(|(k, _)| k == 1) {
        stats
            .bad_annotations
            .extend(dataset.bad_lines.iter().cloned());
    }
    // The report's gallery, with a resumed run's shots.
    let mut gallery = match &args.report {
        Some(_) => Some(Gallery::load(&args.out)?),
        None => None,
    };
    let done: std::collections::HashSet<String> = stats.done.iter().cloned().collect();
    let todo: Vec<&String> = ids.iter().filter(|id| !done.contains(*id)).collect();
    if args.resume && !args.quiet {
        eprintln!(
            "resume: {} of {} images already done in `{}`",
            ids.len() - todo.len(),
            ids.len(),
            file.path.display()
        );
    }
    bar.set_length(todo.len() as u64);
    let run = Run {
        args: &args,
        dataset: &dataset,
        options: &options,
        explainer,
        classes: &classes,
        cascade: cascade.as_ref(),
        bar: &bar,
    };
    catch_interrupt();
    let mut interrupted = false;
    for id in todo {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        bar.inc(1);
        bar.set_message(id.clone());
        let started = std::time::Instant::now();
        let scored = evaluate_one(&run, id, &mut stats, &mut gallery);
        stats.seconds += started.elapsed().as_secs_f64();
        match scored {
            Ok(Some(image_rows)) => {
                file.append(&image_rows)?;
                rows.extend(image_rows);
                stats.done.push(id.clone());
                stats.images += 1;
            }
            Ok(None) => {}
            Err(e) => stats.failed_images.push(format!("{id}: {e:#}")),
        }
        write_stats(&args.out, &stats)?;
        if let Some(g) = gallery.as_mut().filter(|g| g.changed) {
            g.save(&args.out)?;
            g.changed = false;
        }
    }
    bar.finish_and_clear();
    let html = args.report.as_deref().zip(gallery.as_ref());
    report(&args.out, &rows, &stats, html)?;
    if interrupted {
        bail!(
            "interrupted after {} of {} images; the rows so far are in `{}`: rerun with --resume to finish",
            stats.done.len(),
            ids.len(),
            file.path.display()
        );
    }
    Ok(())
}

/// Reads one image and its annotation and scores it: `Some(rows)` when it was evaluated,
/// `None` when its annotation is bad (counted in `stats`), an error when the image or the
/// scoring failed.
fn evaluate_one(
    run: &Run,
    id: &str,
    stats: &mut Stats,
    gallery: &mut Option<Gallery>,
) -> Result<Option<Vec<Row>>> {
    let item = match run.dataset.item(id)? {
        Found::Item(item) => item,
        Found::BadAnnotation(reason) => {
            stats.bad_annotations.push(reason);
            return Ok(None);
        }
    };
    let image = run
        .args
        .common
        .image
        .decode(&output::read(&item.image)?, id)?;
    stats.bad_annotations.extend(item.bad.iter().cloned());
    score_image(run, id, &item, &image, stats, gallery).map(Some)
}
