//! igcam for Python: the native half of the `igcam` package (`igcam._igcam`). It converts
//! between Python values and the library's types and calls [`igcam::Explainer`]; everything
//! else (numpy arrays, PIL images, result objects) is `igcam/_explainer.py`, and `from_torch`
//! is `igcam/_torch.py`.
//!
//! Arrays cross as `bytes` (little-endian `float32` or `uint8`) with their shape, so the module
//! needs nothing but the stable ABI (one wheel for CPython 3.9 and later). The GIL is released
//! while the explainer computes; it is taken back after each chunk to report progress and to
//! let Ctrl-C stop the request.

mod device;
mod errors;
mod input;
mod shared;

use std::panic::{AssertUnwindSafe, catch_unwind};

use igcam::cam::noise_tunnel::{NoiseKind, NoiseTunnel};
use igcam::cam::{CamMap, Method, Quadrature};
use igcam::metrics::{Confidence, PixelBox, boxes_mask, table};
use igcam::onnx::OnnxModel;
use igcam::onnx::external::{ExternalData, NoExternalData};
use igcam::onnx::model_folder::ModelFolder;
use igcam::onnx::randomise::Cascade;
use igcam::preprocess::{Baseline, Preset};
use igcam::reexplain::Redo;
use igcam::render::{self, Colormap};
use igcam::scoring::{self, ScoreOptions, ToScore};
use igcam::task::Task;
use igcam::task::detect::{DetectOptions, Detection};
use igcam::{Explainer, ExplainerOptions, Prepared, Request};
use image::RgbImage;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::{input_error, model_error, to_py};
use crate::input::Input;
use crate::shared::{Shared, panic_text};

#[global_allocator]
static ALLOCATOR: igcam::allocator::MiMalloc = igcam::allocator::MiMalloc;

/// The embedded ImageNet EfficientNet-Lite0 (the CLI's default model).
const DEFAULT_MODEL: &[u8] = include_bytes!("../../models/efficientnet-lite0.onnx");

/// Milliseconds since the first call: the clock handed to the library for each map's `ms`.
fn now_ms() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1000.0
}

/// A loaded model with its explainer (`igcam.Explainer` wraps it).
#[pyclass(frozen, module = "igcam._igcam")]
struct Model {
    explainer: Shared<Explainer>,
    /// The device the model runs on (`all` leaves out the CPU-only methods elsewhere).
    device: burn::tensor::Device,
    #[pyo3(get)]
    backend: String,
    /// Said once when the backend asked for could not be opened (`wgpu` without an adapter).
    #[pyo3(get)]
    notice: Option<String>,
    /// The tensors that can be explained: `(name, op type, shape for one image)`.
    #[pyo3(get)]
    layers: Vec<(String, String, Vec<usize>)>,
    /// The model's classes' labels.
    #[pyo3(get)]
    labels: Vec<String>,
    /// The explained layer.
    #[pyo3(get)]
    layer: String,
    /// The model's default layer and why it was chosen.
    #[pyo3(get)]
    default_layer: Option<(String, String)>,
    /// `(height, width)` of the model's input.
    #[pyo3(get)]
    input_size: (usize, usize),
    #[pyo3(get)]
    num_classes: usize,
    /// The path baseline of a call that names none.
    baseline: Baseline,
    /// The model's ONNX bytes (`None`: the embedded model), which MPRT randomises.
    bytes: Option<Vec<u8>>,
    /// The folder of a model given as a path: its external weights (`model.onnx.data`).
    folder: Option<std::path::PathBuf>,
    max_pixels: u64,
    lenient: bool,
}

/// The folder of the model file at `path`, whose external weights it may name.
fn external_folder(path: Option<&std::path::Path>) -> PyResult<Option<ModelFolder>> {
    path.map(|p| {
        ModelFolder::of(p)
            .map_err(|e| input_error(format!("cannot read the folder of `{}`: {e}", p.display())))
    })
    .transpose()
}

/// What reads a model's external weights: its folder, or nothing (bytes alone).
fn external_data(folder: Option<&ModelFolder>) -> &dyn ExternalData {
    match folder {
        Some(f) => f,
        None => &NoExternalData,
    }
}

/// One of `names` parsed by `parse`, or the library's error.
fn parsed<T>(value: &str, parse: impl Fn(&str) -> igcam::Result<T>) -> PyResult<T> {
    parse(value).map_err(to_py)
}

#[pymethods]
impl Model {
    /// Loads `model` (ONNX bytes; `None`: the embedded EfficientNet-Lite0) on `backend`.
    #[new]
    #[pyo3(signature = (model, layer, backend, threads, labels, preprocess, baseline, batch, no_crop, max_pixels, lenient, model_path=None, task="auto", output=None, detect=(0.25, None, 300)))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<&[u8]>,
        layer: Option<String>,
        backend: &str,
        threads: Option<usize>,
        labels: Option<Vec<String>>,
        preprocess: Option<&str>,
        baseline: &str,
        batch: Option<usize>,
        no_crop: bool,
        max_pixels: Option<u64>,
        lenient: bool,
        model_path: Option<std::path::PathBuf>,
        task: &str,
        output: Option<String>,
        detect: (f32, Option<f32>, usize),
    ) -> PyResult<Self> {
        let task = parsed(task, Task::parse)?;
        if threads == Some(0) {
            return Err(input_error("`threads` must be at least 1"));
        }
        if max_pixels == Some(0) {
            return Err(input_error("`max_pixels` must be at least 1"));
        }
        let preset = preprocess.map(|p| parsed(p, Preset::parse)).transpose()?;
        let (conf, iou, max_det) = detect;
        let detect = DetectOptions { conf, iou, max_det };
        let baseline = parsed(baseline, Baseline::parse)?;
        let backend = backend.to_string();
        let load = move || {
            if let Some(n) = threads {
                // The pool is built once per process; a later size is ignored, as in the CLI.
                let _ = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global();
            }
            let Some((opened, notice)) = device::open(&backend) else {
                return Err(input_error(format!(
                    "unknown backend `{backend}` (auto, cpu, wgpu)"
                )));
            };
            let folder = external_folder(model_path.as_deref())?;
            let onnx = OnnxModel::load(
                model.unwrap_or(DEFAULT_MODEL),
                external_data(folder.as_ref()),
                &opened.device,
                output.as_deref(),
            )
            .map_err(to_py)?;
            let name = model_path
                .as_deref()
                .map_or("the model".to_string(), |p| p.display().to_string());
            Task::expect(&onnx, &name, task).map_err(to_py)?;
            let labels = match labels {
                Some(l) => l,
                None => Task::model_labels(&onnx).unwrap_or_default(),
            };
            // A detector's default is its neck outputs, comma-separated.
            let default_layer = onnx
                .default_layers_reason()
                .map(|(layers, why)| (layers.join(","), why));
            let layers = onnx
                .layers()
                .into_iter()
                .map(|l| (l.name, l.op_type, l.shape))
                .collect();
            let [h, w] = onnx.input_size();
            let num_classes = onnx.num_classes();
            let preset = preset.unwrap_or_else(|| Task::default_preset(&onnx));
            let options = ExplainerOptions {
                layer,
                preset,
                baseline,
                no_crop,
                batch,
                max_pixels,
                detect,
            };
            let explainer = Explainer::new(onnx, labels.clone(), options).map_err(to_py)?;
            Ok(Self {
                layer: explainer.layers().join(","),
                explainer: Shared::new(explainer),
                device: opened.device,
                backend: opened.label,
                notice,
                layers,
                labels,
                default_layer,
                input_size: (h, w),
                num_classes,
                baseline,
                bytes: model.map(<[u8]>::to_vec),
                folder: model_path,
                max_pixels: max_pixels.unwrap_or(igcam::budget::DEFAULT_MAX_PIXELS),
                lenient,
            })
        };
        // A panic while loading (a bug for hostile bytes to find) is a model problem, not an abort.
        py.detach(move || {
            catch_unwind(AssertUnwindSafe(load))
                .unwrap_or_else(|panic| Err(model_error(panic_text(panic.as_ref()))))
        })
    }

    /// Explains one image. `kind` says what `data` holds: `encoded` (PNG or JPEG bytes), `rgb`
    /// (`uint8`, shape `(H, W, 3)`) or `normalised` (`float32`, shape `(3, H, W)` at the model's
    /// input size). Returns a dict: `photo` (the model's input as RGB bytes), `top5`, `crop`
    /// and `maps` (one dict per target and method).
    #[pyo3(signature = (kind, data, shape, targets, methods, steps, integrate, quadrature, eigen_smooth, aug_smooth, noise_tunnel, nt_samples, nt_stdev, seed, layers, batch, force, baseline, progress, region=None))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        data: &[u8],
        shape: Vec<usize>,
        targets: Vec<String>,
        methods: Vec<String>,
        steps: usize,
        integrate: bool,
        quadrature: &str,
        eigen_smooth: bool,
        aug_smooth: bool,
        noise_tunnel: Option<String>,
        nt_samples: usize,
        nt_stdev: f32,
        seed: u64,
        layers: Vec<String>,
        batch: Option<usize>,
        force: bool,
        baseline: Option<String>,
        progress: Option<Py<PyAny>>,
        region: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let spec: RequestSpec = (
            (
                methods,
                steps,
                integrate,
                quadrature.to_string(),
                eigen_smooth,
                aug_smooth,
                noise_tunnel,
            ),
            (nt_samples, nt_stdev, seed, layers, batch, force, baseline),
        );
        let (mut request, baseline) = self.request_of(spec)?;
        request.clock = Some(now_ms);
        request.region = region.map(Into::into);
        let input = Input::new(kind, data, shape)?;
        // Said as a warning by the Python side (only a lenient explainer gets this far).
        let truncated = input.truncated_jpeg();
        let (max_pixels, lenient) = (self.max_pixels, self.lenient);
        let out = py.detach(|| {
            self.explainer.with(|explainer| {
                // The call's baseline (a call that names none takes the constructor's).
                explainer.set_baseline(baseline);
                let prepared = input
                    .prepare(explainer, max_pixels, lenient)
                    .map_err(to_py)?;
                request.targets = explainer
                    .resolve_targets(&prepared, &targets)
                    .map_err(to_py)?;
                // Progress and Ctrl-C, with the GIL taken back between chunks.
                let mut stopped: Option<PyErr> = None;
                let maps = explainer.explain_or_stop(&prepared, &request, &mut |done, total| {
                    let result = Python::attach(|py| {
                        py.check_signals()?;
                        if let Some(callback) = &progress {
                            callback.call1(py, (done, total))?;
                        }
                        Ok::<(), PyErr>(())
                    });
                    result.map_err(|e| {
                        stopped = Some(e);
                        igcam::Error::Stopped
                    })
                });
                let maps = match (maps, stopped) {
                    (_, Some(e)) => return Err(e),
                    (Err(e), None) => return Err(to_py(e)),
                    (Ok(maps), None) => maps,
                };
                let records: Vec<MapRecord> = maps
                    .into_iter()
                    .map(|e| MapRecord {
                        prediction: prepared.target_prediction(e.target),
                        detection: prepared
                            .detections()
                            .map(|d| (e.target, d[e.target].clone())),
                        method: e.method.name(),
                        label: e.label,
                        layer: e.layer,
                        steps: e.steps,
                        map: e.map,
                        ms: e.ms,
                        convergence_delta: e.convergence_delta,
                    })
                    .collect();
                Ok((prepared, records))
            })
        })?;
        let (prepared, records) = out;
        let result = result_dict(py, &prepared, records, request.quadrature)?;
        result.set_item("truncated", truncated)?;
        Ok(result)
    }

    /// Scores maps of one photo (`photo`: its RGB bytes at the model's input, as `explain`
    /// returned it) with `eval`'s metrics. Returns one dict per map.
    #[pyo3(signature = (photo, maps, score, curve_steps, tolerance, metrics, settings, redo_settings, again, max_forwards, max_explanations))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        photo: &[u8],
        maps: Vec<MapToScore<'py>>,
        score: &str,
        curve_steps: usize,
        tolerance: f64,
        metrics: &str,
        settings: MetricSettings,
        redo_settings: (usize, f32, Option<usize>),
        again: Option<RequestSpec>,
        max_forwards: usize,
        max_explanations: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let confidence = parsed(score, Confidence::parse)?;
        let extra = table::select(metrics).map_err(to_py)?;
        if curve_steps == 0 {
            return Err(input_error("`curve_steps` must be at least 1"));
        }
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(input_error(format!(
                "`tolerance` {tolerance} must be a finite number of pixels, 0 or more"
            )));
        }
        let (h, w) = self.input_size;
        if photo.len() != h * w * 3 {
            return Err(input_error(format!(
                "the photo holds {} bytes but the model's input is {h}x{w}x3: score explanations of this explainer",
                photo.len()
            )));
        }
        let photo = RgbImage::from_raw(w as u32, h as u32, photo.to_vec())
            .ok_or_else(|| input_error("the photo's bytes do not fill the model's input"))?;
        let mut cams = Vec::with_capacity(maps.len());
        let mut masks = Vec::with_capacity(maps.len());
        for (values, height, width, target, label, boxes, mask) in &maps {
            if *target >= self.num_classes {
                return Err(to_py(igcam::Error::TargetOutOfRange {
                    index: *target,
                    classes: self.num_classes,
                }));
            }
            cams.push((
                cam_map(values.as_bytes(), *height, *width)?,
                *target,
                label.as_str(),
            ));
            masks.push(match (boxes, mask) {
                (Some(boxes), _) => {
                    let boxes: Vec<PixelBox> = boxes
                        .iter()
                        .map(|&(x0, y0, x1, y1)| PixelBox { x0, y0, x1, y1 })
                        .collect();
                    Some(boxes_mask(&boxes, h, w))
                }
                (None, Some(mask)) => Some(mask.as_bytes().iter().map(|&b| b != 0).collect()),
                (None, None) => None,
            });
        }
        let (
            top_k,
            flip_step,
            region_patch,
            regions,
            fc_runs,
            fc_subset,
            road_percentiles,
            road_noise,
            road_accuracy_percentages,
            irof_segments,
            seed,
        ) = settings;
        if let Some(p) = road_accuracy_percentages
            .iter()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            return Err(input_error(format!(
                "`road_accuracy_percentages` {p} must lie between 0 and 100"
            )));
        }
        if let Some(p) = road_percentiles
            .iter()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            return Err(input_error(format!(
                "`road_percentiles` {p} must lie between 0 and 100"
            )));
        }
        if road_percentiles.is_empty() {
            return Err(input_error(
                "`road_percentiles` must hold at least one percentile",
            ));
        }
        if !(road_noise.is_finite() && road_noise >= 0.0) {
            return Err(input_error(format!(
                "`road_noise` {road_noise} must be a finite number, 0 or more"
            )));
        }
        let options = ScoreOptions {
            confidence,
            curve_steps,
            tolerance,
            extra,
            top_k,
            flip_step,
            region_patch,
            regions,
            fc_runs,
            fc_subset,
            road_percentiles,
            road_noise,
            road_accuracy_percentages,
            irof_segments,
            ms_samples: redo_settings.0,
            ms_radius: redo_settings.1,
            mprt_layers: redo_settings.2,
            seed,
        };
        let redo = options.redo_options();
        // MPRT's cascade: the model's file read once for this call.
        let cascade = match redo.mprt_layers {
            Some(_) => {
                let bytes = self.bytes.as_deref().unwrap_or(DEFAULT_MODEL);
                let folder = external_folder(self.folder.as_deref())?;
                Some(Cascade::new(bytes, external_data(folder.as_ref())).map_err(to_py)?)
            }
            None => None,
        };
        let requests = redo.requests(cascade.as_ref().map_or(0, |c| c.layers().len()));
        if redo.any() && requests > max_explanations {
            return Err(input_error(format!(
                "these metrics explain each image {requests} more times (`ms_samples`, random_logit, mprt's layers), over `max_explanations` {max_explanations}: lower `ms_samples` or `mprt_layers`, or raise `max_explanations`"
            )));
        }
        let again = match again {
            Some(spec) => Some(self.request_of(spec)?),
            None => None,
        };
        let values = options.subset_values(3 * h * w);
        if values > scoring::MAX_SUBSET_VALUES {
            return Err(input_error(format!(
                "`fc_runs` x `fc_subset` would hold {values} channel values at once, over {}: lower one of them",
                scoring::MAX_SUBSET_VALUES
            )));
        }
        let forwards = options.forwards(3, [h, w]);
        if forwards > max_forwards {
            return Err(input_error(format!(
                "these metrics need {forwards} forward passes per explanation at {h}x{w} (`curve_steps`, `flip_step`, `regions`, `fc_runs`, `road_percentiles`, `road_accuracy_percentages`, `irof_segments`), over `max_forwards` {max_forwards}: lower those or raise `max_forwards`"
            )));
        }
        let scores = py.detach(|| {
            self.explainer.with(|explainer| {
                let to_score: Vec<ToScore> = cams
                    .iter()
                    .zip(&masks)
                    .map(|((map, target, label), mask)| ToScore {
                        map,
                        label,
                        target: *target,
                        mask: mask.as_deref(),
                    })
                    .collect();
                let Some((mut request, baseline)) = again else {
                    return scoring::score(explainer, &photo, &to_score, &options, None)
                        .map_err(to_py);
                };
                // The request the maps came from, for their classes, on its baseline.
                explainer.set_baseline(baseline);
                request.targets = igcam::dedup::unique(cams.iter().map(|c| c.1));
                let redo = Redo {
                    request: &request,
                    cascade: cascade.as_ref(),
                    status: None,
                };
                scoring::score(explainer, &photo, &to_score, &options, Some(&redo)).map_err(to_py)
            })
        })?;
        let out = PyList::empty(py);
        for s in scores {
            let d = PyDict::new(py);
            d.set_item("drop", s.faithfulness.drop)?;
            d.set_item("increase", s.faithfulness.increase)?;
            d.set_item("deletion", s.faithfulness.deletion)?;
            d.set_item("insertion", s.faithfulness.insertion)?;
            d.set_item("ebpg", s.ebpg)?;
            d.set_item("bbox", s.bbox)?;
            d.set_item("pointing", s.pointing)?;
            let extra = PyDict::new(py);
            for (name, value) in &s.extra {
                extra.set_item(*name, (!value.is_nan()).then_some(*value))?;
            }
            d.set_item("extra", extra)?;
            out.append(d)?;
        }
        Ok(out)
    }
}

impl Model {
    /// The request (without targets) and baseline of an `explain` call's settings.
    fn request_of(&self, spec: RequestSpec) -> PyResult<(Request, Baseline)> {
        let (
            (methods, steps, integrate, quadrature, eigen_smooth, aug_smooth, noise_tunnel),
            (nt_samples, nt_stdev, seed, layers, batch, force, baseline),
        ) = spec;
        let mut request = Request::new(Vec::new(), methods_of(&methods, &self.device)?, steps);
        request.integrate = integrate;
        request.quadrature = parsed(&quadrature, Quadrature::parse)?;
        request.eigen_smooth = eigen_smooth;
        request.aug_smooth = aug_smooth;
        request.noise_tunnel = match noise_tunnel {
            Some(kind) => Some(NoiseTunnel {
                kind: parsed(&kind, NoiseKind::parse)?,
                samples: nt_samples,
                stdev: nt_stdev,
            }),
            None => None,
        };
        request.seed = seed;
        match layers.len() {
            0 => {}
            1 => request.layer = layers.into_iter().next(),
            _ => request.layers = layers,
        }
        request.batch = batch;
        request.force = force;
        let baseline = match baseline {
            Some(b) => parsed(&b, Baseline::parse)?,
            None => self.baseline,
        };
        Ok((request, baseline))
    }
}

/// What an `explain` call asked for besides its images and targets, as `explain` takes it:
/// methods, steps, integrate, quadrature, eigen_smooth, aug_smooth, noise_tunnel, nt_samples,
/// nt_stdev, seed, layers, batch, force, baseline.
/// (Two tuples: pyo3 reads tuples of at most 12.)
type RequestSpec = (
    (Vec<String>, usize, bool, String, bool, bool, Option<String>),
    (
        usize,
        f32,
        u64,
        Vec<String>,
        Option<usize>,
        bool,
        Option<String>,
    ),
);

/// What to score, per map: the raw map (`float32` bytes, height, width), its class, its
/// method's label, and its ground truth as boxes `(x0, y0, x1, y1)` at the model's input, as a
/// mask (`H * W` bytes, 0 or 1), or neither.
/// The metric settings `evaluate` passes: top_k, flip_step, region_patch, regions, fc_runs,
/// fc_subset, road_percentiles, road_noise, road_accuracy_percentages, irof_segments, seed.
type MetricSettings = (
    usize,
    Option<usize>,
    usize,
    usize,
    usize,
    usize,
    Vec<f64>,
    f32,
    Vec<f64>,
    usize,
    u64,
);

type MapToScore<'py> = (
    Bound<'py, PyBytes>,
    usize,
    usize,
    usize,
    String,
    Option<Vec<(usize, usize, usize, usize)>>,
    Option<Bound<'py, PyBytes>>,
);

/// One finished map, with its target's prediction.
struct MapRecord {
    prediction: igcam::labels::Prediction,
    /// A detector's explained detection, with its index.
    detection: Option<(usize, Detection)>,
    method: &'static str,
    label: String,
    layer: String,
    steps: usize,
    map: CamMap,
    ms: f64,
    convergence_delta: Option<f64>,
}

/// The method names, `all` expanded (to the methods that run on `device`), each once.
fn methods_of(names: &[String], device: &burn::tensor::Device) -> PyResult<Vec<Method>> {
    let mut methods = Vec::new();
    for name in names {
        if name == "all" {
            methods.extend(Method::all_on(device));
        } else {
            methods.push(parsed(name, Method::parse)?);
        }
    }
    Ok(igcam::dedup::unique(methods))
}

/// `explain`'s answer as Python values.
fn result_dict<'py>(
    py: Python<'py>,
    prepared: &Prepared,
    records: Vec<MapRecord>,
    quadrature: Quadrature,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("photo", PyBytes::new(py, prepared.photo.as_raw()))?;
    out.set_item(
        "photo_size",
        (prepared.photo.height(), prepared.photo.width()),
    )?;
    let top5: Vec<_> = prepared
        .top(5)
        .iter()
        .map(|p| (p.index, p.label.clone(), p.logit, p.prob))
        .collect();
    out.set_item("top5", top5)?;
    let c = prepared.geometry.crop_box();
    out.set_item("crop", (c.x0, c.y0, c.x1, c.y1))?;
    let maps = PyList::empty(py);
    for r in records {
        let m = PyDict::new(py);
        m.set_item("target", r.prediction.index)?;
        m.set_item("target_label", r.prediction.label)?;
        m.set_item("logit", r.prediction.logit)?;
        m.set_item("prob", r.prediction.prob)?;
        m.set_item("method", r.label)?;
        m.set_item("method_name", r.method)?;
        m.set_item("layer", r.layer)?;
        m.set_item("steps", r.steps)?;
        m.set_item("quadrature", (r.steps > 1).then(|| quadrature.name()))?;
        m.set_item("shape", (r.map.height, r.map.width))?;
        m.set_item("cam", PyBytes::new(py, &f32_bytes(&r.map.values)))?;
        m.set_item("ms", r.ms)?;
        m.set_item("convergence_delta", r.convergence_delta)?;
        let detection = match r.detection {
            Some((index, d)) => {
                let dict = PyDict::new(py);
                dict.set_item("index", index)?;
                dict.set_item("anchor", d.anchor)?;
                dict.set_item("class", d.class)?;
                dict.set_item("score", d.score)?;
                dict.set_item("box", (d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]))?;
                Some(dict)
            }
            None => None,
        };
        m.set_item("detection", detection)?;
        maps.append(m)?;
    }
    out.set_item("maps", maps)?;
    Ok(out)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn cam_map(values: &[u8], height: usize, width: usize) -> PyResult<CamMap> {
    if values.len() != 4 * height * width || height == 0 || width == 0 {
        return Err(input_error(format!(
            "a map of {height}x{width} float32 values cannot have {} bytes",
            values.len()
        )));
    }
    Ok(CamMap {
        height,
        width,
        values: values
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    })
}

/// A map (`float32` bytes, `height` x `width`) resized bilinearly to `size` = `(H, W)`, as the
/// CLI's `_upsampled.npy`.
#[pyfunction]
fn upsample<'py>(
    py: Python<'py>,
    values: &[u8],
    height: usize,
    width: usize,
    size: (usize, usize),
) -> PyResult<Bound<'py, PyBytes>> {
    let map = cam_map(values, height, width)?;
    let up = render::upsample_bilinear(&map, size.0, size.1);
    Ok(PyBytes::new(py, &f32_bytes(&up.values)))
}

/// The CLI's overlay of a map on the model's input photo (`photo`: RGB bytes of `photo_size`):
/// the map resized to the photo, min-max scaled, coloured with `colormap` and blended with
/// opacity `alpha`. Returns RGB bytes.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn overlay<'py>(
    py: Python<'py>,
    photo: &[u8],
    photo_size: (u32, u32),
    values: &[u8],
    height: usize,
    width: usize,
    colormap: &str,
    alpha: f32,
) -> PyResult<Bound<'py, PyBytes>> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(input_error(format!(
            "`alpha` must be between 0 and 1, not {alpha}"
        )));
    }
    let colormap = parsed(colormap, Colormap::parse)?;
    let (h, w) = photo_size;
    let photo = RgbImage::from_raw(w, h, photo.to_vec())
        .ok_or_else(|| input_error("the photo's bytes do not fill its size"))?;
    let map = cam_map(values, height, width)?;
    let up = render::upsample_bilinear(&map, h as usize, w as usize);
    let blended = render::overlay(&photo, &render::heatmap(&up, colormap), alpha);
    Ok(PyBytes::new(py, blended.as_raw()))
}

/// RGB bytes of `size` = `(H, W)` as a PNG file's bytes.
#[pyfunction]
fn encode_png<'py>(py: Python<'py>, rgb: &[u8], size: (u32, u32)) -> PyResult<Bound<'py, PyBytes>> {
    let image = RgbImage::from_raw(size.1, size.0, rgb.to_vec())
        .ok_or_else(|| input_error("the image's bytes do not fill its size"))?;
    let png = render::encode_png(&image).map_err(to_py)?;
    Ok(PyBytes::new(py, &png))
}

/// The method table's names, in its order.
#[pyfunction]
fn method_names() -> Vec<&'static str> {
    Method::names()
}

#[pymodule]
fn _igcam(m: &Bound<'_, PyModule>) -> PyResult<()> {
    igcam::allocator::retain_freed_memory();
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(upsample, m)?)?;
    m.add_function(wrap_pyfunction!(overlay, m)?)?;
    m.add_function(wrap_pyfunction!(encode_png, m)?)?;
    m.add_function(wrap_pyfunction!(method_names, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
