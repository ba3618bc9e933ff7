//! `igcam-wgpu explain`: maps, overlays, NPY and JSON for images x targets x methods.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use igcam::cam::{self, Method, PathRun};
use igcam::labels::{self, Prediction};
use igcam::onnx::OnnxModel;
use igcam::preprocess::{self, Baseline, Preset};
use igcam::render::{self, Colormap};
use indicatif::{ProgressBar, ProgressStyle};

use crate::assets;
use crate::backend::{self, Backend, BackendChoice};
use crate::output::{self, JsonCam, JsonClass, JsonRecord};

/// Arguments of `explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// Images (PNG, JPEG) or folders of images. Default: the bundled cat photo.
    images: Vec<PathBuf>,
    /// ONNX classifier. Default: the embedded ImageNet EfficientNet-Lite0.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Class labels, one per line. Default: ImageNet's for 1000-class models.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// ONNX tensor to explain (see `igcam-wgpu layers`). Default: the last activation of the
    /// last convolutional block.
    #[arg(long)]
    layer: Option<String>,
    /// Methods, comma-separated: igcam, gradcam, gradcampp, xgradcam, layercam, ig.
    #[arg(long, value_delimiter = ',', default_value = "igcam")]
    method: Vec<String>,
    /// Integrate the CAM methods along the path (IG-CAM and IG always do).
    #[arg(long)]
    integrate: bool,
    /// Path steps m for integrated methods.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Path steps per forward/backward chunk. Default: 10 at 224x224, scaled by image area.
    #[arg(long)]
    batch: Option<usize>,
    /// Path baseline: black (a black image, normalised) or zero.
    #[arg(long, default_value = "black")]
    baseline: String,
    /// Targets, comma-separated: top1, a class index, or a label.
    #[arg(long, value_delimiter = ',', default_value = "top1")]
    target: Vec<String>,
    /// Pixel normalisation: imagenet, raw01 or caffe.
    #[arg(long, default_value = "imagenet")]
    preprocess: String,
    /// Resize the whole image to the input size instead of resize + centre crop.
    #[arg(long)]
    no_crop: bool,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "wgpu")]
    backend: BackendChoice,
    /// Output folder for PNG, NPY and per-image JSON files.
    #[arg(long, default_value = "igcam-out")]
    out: PathBuf,
    /// Also write every record into one JSON array here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the raw and the upsampled map as .npy files.
    #[arg(long)]
    npy: bool,
    /// Heatmap colours: turbo, viridis, inferno, magma, greys.
    #[arg(long, default_value = "turbo")]
    colormap: String,
    /// Heatmap opacity over the photo, 0..1.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// No progress bar and no per-image report.
    #[arg(long)]
    quiet: bool,
}

/// Options checked and parsed before any work.
struct Plan {
    methods: Vec<Method>,
    preset: Preset,
    baseline: Baseline,
    colormap: Colormap,
}

fn plan(args: &ExplainArgs) -> Result<Plan> {
    if args.steps == 0 {
        bail!("--steps must be at least 1 (the paper uses 50)");
    }
    if args.batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.alpha) {
        bail!("--alpha must be between 0 and 1");
    }
    Ok(Plan {
        methods: Method::parse_list(&args.method)?,
        preset: Preset::parse(&args.preprocess)?,
        baseline: Baseline::parse(&args.baseline)?,
        colormap: Colormap::parse(&args.colormap)?,
    })
}

fn class_labels(args: &ExplainArgs, model: &OnnxModel) -> Result<Vec<String>> {
    match &args.labels {
        Some(p) => {
            let text = String::from_utf8(output::read(p)?)
                .with_context(|| format!("`{}` is not UTF-8 text", p.display()))?;
            Ok(labels::parse_labels(&text))
        }
        None if model.num_classes() == 1000 => Ok(labels::parse_labels(assets::IMAGENET_LABELS)),
        None => Ok(Vec::new()),
    }
}

/// One input image: its name and bytes.
struct Input {
    name: String,
    bytes: Vec<u8>,
}

fn inputs(args: &ExplainArgs) -> Result<Vec<Result<Input>>> {
    if args.images.is_empty() {
        return Ok(vec![Ok(Input {
            name: assets::DEFAULT_IMAGE_NAME.into(),
            bytes: assets::DEFAULT_IMAGE.to_vec(),
        })]);
    }
    Ok(output::expand_inputs(&args.images)?
        .into_iter()
        .map(|p| {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            output::read(&p).map(|bytes| Input { name, bytes })
        })
        .collect())
}

/// Everything shared by all images of one run.
struct Session<'a> {
    args: &'a ExplainArgs,
    plan: Plan,
    backend: Backend,
    model: OnnxModel,
    model_name: String,
    layer: String,
    labels: Vec<String>,
    bar: ProgressBar,
}

impl Session<'_> {
    fn explain_image(&self, input: &Input, records: &mut Vec<serde_json::Value>) -> Result<()> {
        let size = self.model.input_size();
        let image = preprocess::decode(&input.bytes)?;
        let photo = preprocess::fit(&image, size, !self.args.no_crop);
        let device = &self.backend.device;
        let (x, b) = igcam::input_pair(&photo, self.plan.preset, self.plan.baseline, device);
        let logits = igcam::logits(&self.model, &x)?;
        let ranked = labels::ranked(&logits, &self.labels);
        let top5: Vec<&Prediction> = ranked.iter().take(5).collect();
        if !self.args.quiet {
            self.bar.suspend(|| {
                println!("{}: top-5", input.name);
                for p in &top5 {
                    println!("  {:>5.1}%  {:>4}  {}", 100.0 * p.prob, p.index, p.label);
                }
            });
        }
        let targets = self
            .args
            .target
            .iter()
            .map(|t| labels::resolve_target(t, &logits, &self.labels))
            .collect::<igcam::Result<Vec<_>>>()?;
        let stem = Path::new(&input.name)
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let mut image_records = Vec::new();
        for &target in &targets {
            for &method in &self.plan.methods {
                let alphas = cam::path_alphas(method, self.args.integrate, self.args.steps)?;
                let run = PathRun {
                    model: &self.model,
                    input: &x,
                    baseline: &b,
                    target,
                    alphas: &alphas,
                    batch: output::default_batch(&self.model, self.args.batch),
                };
                let start = Instant::now();
                let base = self.bar.position();
                let map = cam::explain(&run, method, &self.layer, &mut |done, _| {
                    self.bar.set_position(base + done as u64)
                })?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                let label = method.label(self.args.integrate);
                let suffix = if targets.len() > 1 {
                    format!("_{label}_c{target}")
                } else {
                    format!("_{label}")
                };
                let up = render::upsample_bilinear(&map, size[0], size[1]);
                let heat = render::heatmap(&up, self.plan.colormap);
                let overlay_path = self.args.out.join(format!("{stem}{suffix}.png"));
                output::write(
                    &overlay_path,
                    &render::encode_png(&render::overlay(&photo, &heat, self.args.alpha))?,
                )?;
                output::write(
                    &self.args.out.join(format!("{stem}{suffix}_heatmap.png")),
                    &render::encode_png(&heat)?,
                )?;
                if self.args.npy {
                    output::write_npy(
                        &self.args.out.join(format!("{stem}{suffix}_cam.npy")),
                        &map,
                    )?;
                    output::write_npy(
                        &self.args.out.join(format!("{stem}{suffix}_upsampled.npy")),
                        &up,
                    )?;
                }
                let target_info = labels::prediction(&logits, &self.labels, target);
                if !self.args.quiet {
                    self.bar.suspend(|| {
                        println!(
                            "  {label}: target {} ({}) logit {:.3}, {}x{} map, {:.1} ms -> {}",
                            target_info.index,
                            target_info.label,
                            target_info.logit,
                            map.height,
                            map.width,
                            ms,
                            overlay_path.display()
                        )
                    });
                }
                let record = JsonRecord {
                    image: input.name.clone(),
                    model: &self.model_name,
                    layer: if method == Method::IntegratedGradients {
                        "input"
                    } else {
                        &self.layer
                    },
                    method: label,
                    steps: alphas.len(),
                    backend: self.backend.name,
                    target: target_info,
                    top5: top5.iter().map(|p| JsonClass::from(*p)).collect(),
                    cam: JsonCam {
                        height: map.height,
                        width: map.width,
                        values: &map.values,
                    },
                    overlay: overlay_path.display().to_string(),
                    ms,
                };
                image_records.push(serde_json::to_value(&record)?);
            }
        }
        output::write(
            &self.args.out.join(format!("{stem}.json")),
            serde_json::to_string_pretty(&image_records)?.as_bytes(),
        )?;
        records.extend(image_records);
        Ok(())
    }
}

/// Runs `explain`. Images that fail are reported and skipped; the exit status is an error if
/// any failed.
pub fn run(args: ExplainArgs) -> Result<()> {
    let plan = plan(&args)?;
    output::prepare_dir(&args.out)?;
    let inputs = inputs(&args)?;
    let backend = backend::open(args.backend);
    let (model, model_name) = output::load_model(args.model.as_deref(), &backend.device)?;
    let layer = match &args.layer {
        Some(l) => l.clone(),
        None => model
            .default_layer()
            .context("the model has no 4-D activation to explain; pass --layer")?,
    };
    if plan.methods.iter().any(|m| m.cam().is_some()) {
        model.layer_shape(&layer)?;
    }
    let labels = class_labels(&args, &model)?;
    let steps_per_target: usize = plan
        .methods
        .iter()
        .map(|m| {
            if m.integrates(args.integrate) {
                args.steps
            } else {
                1
            }
        })
        .sum();
    let total = (inputs.len() * args.target.len() * steps_per_target) as u64;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {elapsed_precise} eta {eta}")
            .expect("static template"),
    );
    if !args.quiet {
        eprintln!(
            "backend: {} ({}); model: {model_name}; layer: {layer}",
            backend.name, backend.description
        );
    }
    let session = Session {
        args: &args,
        plan,
        backend,
        model,
        model_name,
        layer,
        labels,
        bar,
    };
    let mut records = Vec::new();
    let count = inputs.len();
    let mut failed = 0;
    for input in inputs {
        let result = input.and_then(|i| {
            session
                .explain_image(&i, &mut records)
                .with_context(|| i.name.clone())
        });
        match result {
            Err(e) if count == 1 => return Err(e),
            Err(e) => {
                session.bar.suspend(|| eprintln!("error: {e:#}"));
                failed += 1;
            }
            Ok(()) => {}
        }
    }
    session.bar.finish_and_clear();
    if let Some(path) = &args.json {
        output::write(path, serde_json::to_string_pretty(&records)?.as_bytes())?;
    }
    if failed > 0 {
        bail!("{failed} of {count} images failed (see above); the others were written");
    }
    Ok(())
}
