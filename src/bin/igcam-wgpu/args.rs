//! Argument groups shared by `explain`, `eval` and `bench` (flattened into each), so the
//! subcommands take the same options under the same names and cannot drift apart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use igcam::cam::noise_tunnel::{NoiseKind, NoiseTunnel};
use igcam::cam::{Method, Quadrature};
use igcam::preprocess::{Baseline, Preset};
use igcam::{Explainer, ExplainerOptions, Request};

use crate::backend::{self, Backend, BackendChoice};
use crate::output;

/// The model, its labels, the explained layer and the pixel normalisation.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// ONNX classifier. Default: the embedded ImageNet EfficientNet-Lite0.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Class labels, one per line. Default: ImageNet's for 1000-class models.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// ONNX tensor to explain (see `igcam-wgpu layers`). Default: the output of the last
    /// convolutional block. Several, comma-separated: each CAM map averaged over them, each
    /// scaled to [0, 1] at the input's size (pytorch-grad-cam's several target_layers).
    #[arg(long)]
    pub layer: Option<String>,
    /// Pixel normalisation. Default: imagenet; raw01 for a YOLO detector (ultralytics and
    /// yolov5 feed RGB / 255).
    #[arg(long, value_enum)]
    pub preprocess: Option<Preset>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

/// A detector's post-processing (ultralytics' `predict` defaults).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Detectors")]
pub struct DetectArgs {
    /// Confidence threshold: a detection needs a higher class score (YOLOv5: objectness ×
    /// class score).
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// NMS IoU threshold: a box goes when it overlaps a better one of its class by more.
    /// Default: 0.7 (ultralytics), 0.45 for YOLOv5's layout (the yolov5 package's).
    #[arg(long)]
    pub iou: Option<f32>,
    /// Most detections kept per image, the best first.
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
}

impl DetectArgs {
    /// The library's thresholds.
    pub fn options(&self) -> igcam::task::detect::DetectOptions {
        igcam::task::detect::DetectOptions {
            conf: self.conf,
            iou: self.iou,
            max_det: self.max_det,
        }
    }
}

/// What the model's output is and which one: `--task`, `--output`.
#[derive(Args, Clone, Debug, Default)]
pub struct OutputArgs {
    /// What the model does: auto (from the output's shape: `[N, classes]` a classifier,
    /// `[N, classes, H, W]` a segmenter, `[N, 4 + classes, anchors]` or `[N, anchors,
    /// 5 + classes]` a YOLO detector), or the one it must be.
    #[arg(long, value_enum, default_value_t = Task::Auto)]
    pub task: Task,
    /// For a model with several outputs: the one to explain (default: the first).
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
}

/// `--task`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// From the output's shape.
    #[default]
    Auto,
    /// A classifier: `[N, classes]` (or `[N, classes, 1, 1]`).
    Classify,
    /// A semantic segmenter: `[N, classes, H, W]`, each class explained over its region.
    Segment,
    /// A YOLO detector without NMS: each kept detection explained at its anchor.
    Detect,
}

impl ModelArgs {
    /// The `--layer` list (empty: the model's default layer).
    pub fn layers(&self) -> Vec<String> {
        self.layer
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::to_string)
            .collect()
    }
}

/// How input images are read.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Images")]
pub struct ImageArgs {
    /// Largest image, in pixels, decoded or resized for the centre crop.
    #[arg(long, default_value_t = igcam::budget::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
    /// Explain truncated JPEGs (the missing part is grey) with a warning instead of refusing them.
    #[arg(long)]
    pub lenient: bool,
}

impl ImageArgs {
    /// Decodes an image file's bytes; with `--lenient`, warns about a truncated JPEG.
    pub fn decode(&self, bytes: &[u8], name: &str) -> Result<image::DynamicImage> {
        let options = igcam::preprocess::DecodeOptions {
            max_pixels: self.max_pixels,
            lenient: self.lenient,
        };
        let image = igcam::preprocess::decode_with(bytes, options)?;
        if self.lenient && igcam::preprocess::jpeg_truncated(bytes) {
            eprintln!("warning: `{name}` is a truncated JPEG; its missing part is grey");
        }
        Ok(image)
    }
}

/// Where to compute.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Device")]
pub struct DeviceArgs {
    /// Backend: auto picks a real GPU through wgpu when there is one, else Burn's CPU backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// CPU threads for the CPU backend. Default: all cores (or RAYON_NUM_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Methods and the path.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Methods and path")]
pub struct PathArgs {
    /// Methods, comma-separated; `all`: every method of the table (off the CPU backend, all but
    /// the CPU-only ShapleyCAM).
    #[arg(long = "method", visible_alias = "methods", value_delimiter = ',', value_parser = method_parser(), default_value = "igcam")]
    pub methods: Vec<MethodArg>,
    /// Integrate every CAM method along the path (IG-CAM and IG always do).
    #[arg(long)]
    pub integrate: bool,
    /// Each CAM map from the first principal component of the weighted activations instead of
    /// their channel sum (pytorch-grad-cam's eigen_smooth; Eigen-CAM and EigenGrad-CAM always
    /// project).
    #[arg(long)]
    pub eigen_smooth: bool,
    /// Each map the mean over the input flipped and not, times 0.9, 1 and 1.1, each map
    /// min-max scaled at the input's resolution and flipped back (pytorch-grad-cam's
    /// aug_smooth; six times the work).
    #[arg(long)]
    pub aug_smooth: bool,
    /// Captum's NoiseTunnel around every method: the maps of --nt-samples noisy copies of the
    /// input (Gaussian, --nt-stdev), combined as their mean, mean square or variance.
    #[arg(long, value_enum)]
    pub noise_tunnel: Option<NoiseKind>,
    /// Noisy copies of the input for --noise-tunnel.
    #[arg(long, default_value_t = 5, requires = "noise_tunnel")]
    pub nt_samples: usize,
    /// Standard deviation of --noise-tunnel's noise, in normalised input units (Captum's
    /// default: 1.0).
    #[arg(long, default_value_t = 1.0, requires = "noise_tunnel")]
    pub nt_stdev: f32,
    /// Seed of everything random (--noise-tunnel's noise, randomcam's weights): the same seed,
    /// the same maps.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Path steps m for the integrated methods.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Where the path's points sit and what each weighs, as Captum's IntegratedGradients
    /// `method` (Captum's default is gausslegendre; igcam keeps the paper's left Riemann sum).
    #[arg(long, value_enum, default_value_t = Quadrature::RiemannLeft)]
    pub quadrature: Quadrature,
    /// Path steps per forward/backward chunk. Default: 10 at 224x224, scaled by the input area,
    /// fewer for a model with very large activations.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Path start.
    #[arg(long, value_enum, default_value_t = Baseline::Black)]
    pub baseline: Baseline,
    /// Allow more than 10000 path steps.
    #[arg(long)]
    pub force: bool,
}

/// One `--method` value: a method of the table, or `all` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodArg {
    /// One method.
    One(Method),
    /// Every method of the table.
    All,
}

/// Whether the device [`load`] opened is the CPU backend: `all` then takes the CPU-only
/// methods too.
static ON_CPU: AtomicBool = AtomicBool::new(true);

/// The `--method` values, from the method table, and `all`.
fn method_parser() -> impl TypedValueParser<Value = MethodArg> {
    PossibleValuesParser::new(Method::names().into_iter().chain(["all"])).map(|name| {
        match Method::parse(&name) {
            Ok(m) => MethodArg::One(m),
            Err(_) => MethodArg::All,
        }
    })
}

impl PathArgs {
    /// The methods asked for, `all` expanded, each once, in the order asked.
    pub fn methods(&self) -> Vec<Method> {
        let all: Vec<Method> = self
            .methods
            .iter()
            .flat_map(|m| match *m {
                MethodArg::One(m) => vec![m],
                MethodArg::All => Method::runnable(ON_CPU.load(Ordering::Relaxed)).collect(),
            })
            .collect();
        igcam::dedup::unique(all)
    }

    /// The request for `targets`, with the per-map clock.
    pub fn request(&self, targets: Vec<usize>) -> Request {
        Request {
            targets,
            methods: self.methods(),
            integrate: self.integrate,
            steps: self.steps,
            quadrature: self.quadrature,
            force: self.force,
            layer: None,
            layers: Vec::new(),
            eigen_smooth: self.eigen_smooth,
            aug_smooth: self.aug_smooth,
            noise_tunnel: self.noise_tunnel.map(|kind| NoiseTunnel {
                kind,
                samples: self.nt_samples,
                stdev: self.nt_stdev,
            }),
            seed: self.seed,
            ig_channels: false,
            batch: None,
            clock: Some(crate::clock::now_ms),
            region: None,
        }
    }

    /// Checks the path options that need no model.
    pub fn check(&self) -> Result<()> {
        // The model is not known yet: any class count passes the target check.
        let mut request = self.request(vec![0]);
        request.clock = None;
        request.check(usize::MAX)?;
        if self.batch == Some(0) {
            anyhow::bail!("--batch must be at least 1");
        }
        Ok(())
    }
}

/// The option groups `explain`, `eval` and `bench` all take.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub path: PathArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

impl CommonArgs {
    /// The request for `targets` (path options, and the layers where `--layer` lists several).
    pub fn request(&self, targets: Vec<usize>) -> Request {
        let mut request = self.path.request(targets);
        let layers = self.model.layers();
        if layers.len() > 1 {
            request.layers = layers;
        }
        request
    }
}

/// The device, the model and everything built from them.
pub struct Loaded {
    /// What runs.
    pub backend: Backend,
    /// The explainer.
    pub explainer: Explainer,
    /// The model's display name.
    pub model_name: String,
    /// The model's file (MPRT randomises its weights).
    pub file: output::ModelFile,
}

/// Opens the device, loads the model and its labels, and builds the explainer.
pub fn load(common: &CommonArgs, no_crop: bool) -> Result<Loaded> {
    let CommonArgs {
        model,
        device,
        path,
        image,
    } = common;
    backend::set_threads(device.threads)?;
    backend::set_cpu_isa()?;
    let backend = backend::open(device.backend);
    let on_cpu = igcam::onnx::on_plain_cpu(&backend.device);
    ON_CPU.store(on_cpu, Ordering::Relaxed);
    let left_out: Vec<&str> = Method::all()
        .filter(|m| m.cpu_only() && !on_cpu)
        .map(|m| m.display())
        .collect();
    if path.methods.iter().any(|m| matches!(m, MethodArg::All)) && !left_out.is_empty() {
        eprintln!(
            "notice: --method all leaves out {}, which runs on the CPU backend only (--backend cpu)",
            left_out.join(", ")
        );
    }
    let (onnx, model_name, file) =
        output::load_model(model.model.as_deref(), &model.output, &backend.device)?;
    let labels = match &model.labels {
        Some(p) => {
            let text = output::read_text(p)?;
            igcam::labels::parse_labels(&text)
        }
        None => igcam::task::Task::model_labels(&onnx).unwrap_or_default(),
    };
    let options = ExplainerOptions {
        layer: model.layers().into_iter().next(),
        preset: model
            .preprocess
            .unwrap_or_else(|| igcam::task::Task::default_preset(&onnx)),
        baseline: path.baseline,
        no_crop,
        batch: path.batch,
        max_pixels: Some(image.max_pixels),
        detect: model.detect.options(),
    };
    let explainer =
        Explainer::new(onnx, labels, options).with_context(|| format!("model `{model_name}`"))?;
    Ok(Loaded {
        backend,
        explainer,
        model_name,
        file,
    })
}
