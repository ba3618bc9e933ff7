//! The pipeline every front end shares (CLI `explain`, `eval`, `bench`, the web page, the
//! tests): a model with its labels, explained layer, pre-processing and path options;
//! [`Explainer::prepare`] fits a photo and runs it once (the top-k and the activations at the
//! input); [`Explainer::explain`] answers a [`Request`] of targets × methods.
//!
//! One backbone pass serves every target and method: each chunk of path points goes through
//! the network up to the layer once, the head runs once per target on those activations, and
//! every integrated CAM method's map is derived from the same activations and gradients. The
//! plain CAM maps of every target come from the single pass at the input made by `prepare`.
//! Pixel-level Integrated Gradients needs input gradients and keeps its own pass per target.

use std::sync::Arc;

use burn::tensor::Tensor;
use image::{DynamicImage, RgbImage};

use crate::cam::fullgrad;
use crate::cam::noise_tunnel::{self, NoiseTunnel};
use crate::cam::{
    CamInputs, CamMap, CamMethod, HeadScores, Method, Quadrature, aug_smooth, scaled,
};
use crate::dedup::unique;
use crate::error::{Error, Message, Result, Setting};
use crate::kernels::par;
use crate::labels::{self, Prediction};
use crate::onnx::objective::Objective;
use crate::onnx::profile::Clock;
use crate::onnx::{Env, LayerGradient, OnnxModel, PathEnds};
use crate::preprocess::{self, Baseline, Geometry, Preset};
use crate::task::detect::{DetectOptions, Detection};
use crate::task::segment::Regions;

/// Told `(steps done, steps in total)` after each chunk; an error it returns stops the request.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> Result<()>;

/// Path steps above which [`Request::check`] wants `force` (hours of work on a CPU).
pub const MAX_STEPS_UNFORCED: usize = 10_000;

/// Settings fixed for an explainer's life.
#[derive(Clone, Debug, Default)]
pub struct ExplainerOptions {
    /// The layer to explain; `None`: the model's default layer.
    pub layer: Option<String>,
    /// Pixel normalisation.
    pub preset: Preset,
    /// Path baseline.
    pub baseline: Baseline,
    /// Resize the whole photo instead of resize + centre crop.
    pub no_crop: bool,
    /// Path points per forward/backward chunk; `None`: 10 at 224², scaled by the input area.
    pub batch: Option<usize>,
    /// Largest resized photo, in pixels; `None`: [`crate::budget::DEFAULT_MAX_PIXELS`].
    pub max_pixels: Option<u64>,
    /// A detector's confidence and NMS thresholds.
    pub detect: DetectOptions,
}

/// A model ready to explain photos.
pub struct Explainer {
    model: OnnxModel,
    labels: Vec<String>,
    layer: String,
    /// A detector's default layers, one per scale, explained together when a request names
    /// no layer (empty otherwise).
    default_layers: Vec<String>,
    options: ExplainerOptions,
    batch: usize,
}

impl Explainer {
    /// Wraps `model`. `labels` may be empty (classes are then called `class N`); the layer is
    /// checked here, so a wrong `--layer` fails before any photo is read.
    ///
    /// A detector's photos are resized whole ([`ExplainerOptions::no_crop`] set): a centre crop
    /// would cut off the objects at the edges.
    pub fn new(model: OnnxModel, labels: Vec<String>, options: ExplainerOptions) -> Result<Self> {
        let options = ExplainerOptions {
            no_crop: options.no_crop || model.detector().is_some(),
            ..options
        };
        check_batch(options.batch)?;
        if model.detector().is_some() {
            options.detect.check()?;
        }
        let channels = model.input_spec().channels;
        if channels != 3 {
            return Err(Error::NotClassifier(format!(
                "input `{}` takes {channels} channels, and photos have 3 (RGB)",
                model.input_spec().name
            )));
        }
        // The default layers are worked out once (a detector's neck walks the graph).
        let (layer, default_layers) = match &options.layer {
            Some(l) => (l.clone(), Vec::new()),
            None => {
                let mut layers = model.default_layers_reason().map(|(l, _)| l);
                let last = layers.as_mut().and_then(Vec::pop).ok_or_else(|| {
                    Error::InvalidOption(
                        Message::from("the model has no 4-D activation to explain; ")
                            .set(Setting::Layer),
                    )
                })?;
                let mut all = layers.unwrap_or_default();
                // Several (a detector's neck): explained together when a request names none.
                if !all.is_empty() {
                    all.push(last.clone());
                }
                (last, all)
            }
        };
        model.layer_shape(&layer)?;
        let batch = match options.batch {
            Some(b) => model.fit_chunk(b),
            None => model.default_chunk(),
        };
        Ok(Self {
            model,
            labels,
            layer,
            default_layers,
            options,
            batch,
        })
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// The class labels (empty when unknown).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The explained layer (ONNX tensor name).
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The layers a request naming none explains: a detector's neck outputs, else
    /// [`Explainer::layer`].
    pub fn layers(&self) -> Vec<&str> {
        if self.default_layers.is_empty() {
            vec![self.layer.as_str()]
        } else {
            self.default_layers.iter().map(String::as_str).collect()
        }
    }

    /// Path points per chunk.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The settings.
    pub fn options(&self) -> &ExplainerOptions {
        &self.options
    }

    /// Fits a decoded photo to the model input (resize + centre crop unless `no_crop`), then
    /// [`Explainer::prepare_fitted`].
    pub fn prepare(&self, image: &DynamicImage) -> Result<Prepared> {
        self.start_prepare(image)?.finish_blocking(self)
    }

    /// Normalises a photo already at the model's input size and runs it through the network
    /// once: the logits (for the top-k and `top1` targets) and the activations at each of
    /// [`Explainer::layers`], which the plain CAM methods of every target reuse.
    pub fn prepare_fitted(&self, photo: RgbImage) -> Result<Prepared> {
        self.start_prepare_fitted(photo)?.finish_blocking(self)
    }

    /// [`Explainer::prepare`] up to the logits, which stay on the device: a caller that must
    /// not block (a browser) reads them back asynchronously and calls [`Preparing::finish`].
    pub fn start_prepare(&self, image: &DynamicImage) -> Result<Preparing> {
        let size = self.model.input_size();
        let geometry = Geometry::new([image.width(), image.height()], size, !self.options.no_crop);
        geometry.check(
            self.options
                .max_pixels
                .unwrap_or(crate::budget::DEFAULT_MAX_PIXELS),
        )?;
        let photo = preprocess::fit(image, size, !self.options.no_crop);
        let mut preparing = self.start_prepare_fitted(photo)?;
        preparing.prepared.geometry = geometry;
        Ok(preparing)
    }

    /// Prepares an input already normalised for the model (`chw`: `[3, H, W]` floats at the
    /// model's input size), as [`Explainer::prepare_fitted`] does a photo. The photo kept for
    /// overlays is the input put back through the preset's inverse; the baseline is the
    /// explainer's.
    pub fn prepare_normalised(&self, chw: Vec<f32>) -> Result<Prepared> {
        let size = self.model.input_size();
        if chw.len() != 3 * size[0] * size[1] {
            return Err(Error::InvalidOption(Message::from(format!(
                "the input holds {} values but the model takes 3x{}x{} = {}",
                chw.len(),
                size[0],
                size[1],
                3 * size[0] * size[1]
            ))));
        }
        if chw.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidOption(
                "the input holds a value that is not finite (NaN or infinity)".into(),
            ));
        }
        let photo = preprocess::denormalise(&chw, self.options.preset, size);
        let device = self.model.device();
        let b = preprocess::baseline(self.options.baseline, self.options.preset, size);
        let x = preprocess::image_tensor(chw, size, device);
        let b = preprocess::image_tensor(b, size, device);
        self.start_prepare_inputs(photo, x, b)?
            .finish_blocking(self)
    }

    /// Sets the path baseline of the inputs prepared from now on.
    pub fn set_baseline(&mut self, baseline: Baseline) {
        self.options.baseline = baseline;
    }

    /// [`Explainer::prepare_fitted`] up to the logits (see [`Explainer::start_prepare`]).
    pub fn start_prepare_fitted(&self, photo: RgbImage) -> Result<Preparing> {
        let size = self.model.input_size();
        if [photo.height() as usize, photo.width() as usize] != size {
            return Err(Error::InvalidOption(Message::from(format!(
                "the photo is {}x{} but the model takes {}x{}",
                photo.width(),
                photo.height(),
                size[1],
                size[0]
            ))));
        }
        let (x, b) = preprocess::input_pair(
            &photo,
            self.options.preset,
            self.options.baseline,
            self.model.device(),
        );
        self.start_prepare_inputs(photo, x, b)
    }

    /// [`Explainer::start_prepare_fitted`] from the normalised input `x` and baseline `b`
    /// (`[1, C, H, W]`) of `photo`.
    fn start_prepare_inputs(
        &self,
        photo: RgbImage,
        x: Tensor<4>,
        b: Tensor<4>,
    ) -> Result<Preparing> {
        let size = self.model.input_size();
        // Every layer a request naming none explains (a detector's neck), in one pass: a
        // request then starts from them instead of running the backbone again.
        let layers = self.layers();
        let at = self.model.phase("forward to layer", || {
            self.model.forward_to_layers(x.clone(), &layers)
        })?;
        let at_input: Vec<LayerState> = layers
            .iter()
            .zip(at)
            .map(|(layer, (activations, env))| LayerState {
                layer: layer.to_string(),
                activations,
                env,
            })
            .collect();
        let last = at_input
            .iter()
            .find(|s| s.layer == self.layer)
            .ok_or_else(|| Error::Internal("the explained layer was not reached".into()))?;
        let logits = self.model.phase("head forward", || {
            self.model
                .forward_from(last.env.clone(), &self.layer, last.activations.clone())
        })?;
        let path = self.model.path_ends(x, b)?;
        let [w, h] = [photo.width(), photo.height()];
        Ok(Preparing {
            prepared: Prepared {
                photo,
                geometry: Geometry::new([w, h], size, false),
                logits: Vec::new(),
                ranked: Vec::new(),
                regions: None,
                detections: None,
                path,
                at_input,
            },
            logits,
            classes: self.model.num_classes(),
            detector: self
                .model
                .detector()
                .map(|&layout| (layout, self.options.detect)),
        })
    }

    /// What explaining `target` with `method` takes the gradient of: the target's logit
    /// (Finer-CAM: its weighted difference with its nearest classes), or for a segmenter the
    /// target's scores summed over its region at the photo.
    fn objective(
        &self,
        method: Method,
        target: usize,
        prepared: &Prepared,
        region: Option<&Arc<[f32]>>,
    ) -> Objective {
        if let (Some(layout), Some(detections)) = (self.model.detector(), prepared.detections()) {
            return detections[target].objective(layout);
        }
        if let Some(regions) = prepared.regions() {
            return match region {
                Some(mask) => Objective::Region {
                    class: target,
                    plane: mask.len(),
                    mask: mask.clone(),
                },
                None => regions.objective(target),
            };
        }
        match method.cam() {
            Some(cam) => cam.objective(target, &prepared.logits),
            None => Objective::Logit(target),
        }
    }

    /// Turns target specs (`top1`, `top5`, `topK`, a class index or a label) into class indices,
    /// best first for `topK`, without repeats.
    ///
    /// For a segmenter, classes rank by their region's size (`topK`: the K largest regions),
    /// and `present` names every class with a region, the largest first.
    ///
    /// For a detector, targets are detections (indices into [`Prepared::detections`], the
    /// best first): `all`, `topK` (the K best), `detN` (detection N), or a class index or label
    /// (every detection of that class).
    pub fn resolve_targets<S: AsRef<str>>(
        &self,
        prepared: &Prepared,
        specs: &[S],
    ) -> Result<Vec<usize>> {
        if let Some(detections) = prepared.detections() {
            return self.resolve_detections(detections, specs);
        }
        let regions = prepared.regions();
        // A segmenter's classes rank by their pixels.
        let sizes: Vec<f32> = match &regions {
            Some(r) => r.pixels().into_iter().map(|n| n as f32).collect(),
            None => prepared.logits.clone(),
        };
        let mut all = Vec::new();
        for spec in specs {
            let top = spec
                .as_ref()
                .strip_prefix("top")
                .and_then(|k| k.parse::<usize>().ok());
            match (spec.as_ref(), &regions) {
                ("present", Some(r)) => all.extend(r.present()),
                // The K largest regions (fewer where fewer classes have one).
                (_, Some(r)) if top.is_some_and(|k| k > 0) => {
                    all.extend(r.present().into_iter().take(top.unwrap_or(0)));
                }
                ("present", None) => {
                    return Err(Error::InvalidOption(
                        Message::setting(Setting::Target).text(
                            " present names a segmenter's classes with a region; this model is a classifier (use top1, topK, an index or a label)",
                        ),
                    ));
                }
                (spec, _) => all.extend(labels::resolve_targets(spec, &sizes, &self.labels)?),
            }
        }
        Ok(unique(all))
    }

    /// A detector's targets (see [`Explainer::resolve_targets`]).
    fn resolve_detections<S: AsRef<str>>(
        &self,
        detections: &[Detection],
        specs: &[S],
    ) -> Result<Vec<usize>> {
        let mut all = Vec::new();
        for spec in specs {
            let spec = spec.as_ref();
            let top = spec
                .strip_prefix("top")
                .and_then(|k| k.parse::<usize>().ok());
            let index = spec
                .strip_prefix("det")
                .and_then(|k| k.parse::<usize>().ok());
            match (spec, top, index) {
                ("all" | "present", _, _) => all.extend(0..detections.len()),
                (_, Some(k), _) => all.extend(0..k.min(detections.len())),
                (_, _, Some(i)) if i < detections.len() => all.push(i),
                (_, _, Some(i)) => {
                    return Err(Error::InvalidOption(
                        Message::setting(Setting::Target)
                            .text(format!(
                                " det{i}: the image has {} detection(s), det0 to det{} (a lower ",
                                detections.len(),
                                detections.len().saturating_sub(1)
                            ))
                            .then(Setting::Conf)
                            .text(" keeps more)"),
                    ));
                }
                _ => {
                    let scores = vec![0.0; self.model.num_classes()];
                    let classes = labels::resolve_targets(spec, &scores, &self.labels)?;
                    let before = all.len();
                    all.extend(
                        (0..detections.len()).filter(|&d| classes.contains(&detections[d].class)),
                    );
                    if all.len() == before {
                        let class = classes[0];
                        return Err(Error::InvalidOption(Message::from(format!(
                            "class {class} ({}) has no detection in this image above the confidence threshold, so there is nothing to explain; {}",
                            labels::label_of(&self.labels, class),
                            detected_classes(detections, &self.labels)
                        ))));
                    }
                }
            }
        }
        if all.is_empty() {
            return Err(Error::InvalidOption(
                Message::from(format!(
                    "nothing to explain: {} detection(s) above the confidence threshold; a lower ",
                    detections.len()
                ))
                .then(Setting::Conf)
                .text(" keeps more"),
            ));
        }
        Ok(unique(all))
    }

    /// Explains `request` on `prepared`, reporting `(steps done, steps in total)` after each
    /// chunk. Maps come back targets outer, methods inner, in the request's order.
    pub fn explain(
        &self,
        prepared: &Prepared,
        request: &Request,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Explanation>> {
        self.explain_or_stop(prepared, request, &mut |done, total| {
            progress(done, total);
            Ok(())
        })
    }

    /// [`Explainer::explain`] whose `progress` may stop the request between chunks: the error
    /// it returns (e.g. [`Error::Stopped`] on Ctrl-C) ends the request and is handed back.
    pub fn explain_or_stop(
        &self,
        prepared: &Prepared,
        request: &Request,
        progress: Progress,
    ) -> Result<Vec<Explanation>> {
        self.check_request(request)?;
        self.check_regions(prepared, request)?;
        if let Some(tunnel) = request.noise_tunnel {
            return self.explain_noise_tunneled(prepared, request, tunnel, progress);
        }
        if request.aug_smooth {
            return self.explain_aug_smoothed(prepared, request, progress);
        }
        self.start(prepared, request)?.run_to_end(progress)
    }

    /// [`Explainer::explain`] with `aug_smooth`: the request once per augmented input, each
    /// map deaugmented, and the six averaged (labels gain `+aug-smooth`).
    fn explain_aug_smoothed(
        &self,
        prepared: &Prepared,
        request: &Request,
        progress: Progress,
    ) -> Result<Vec<Explanation>> {
        let plain = Request {
            aug_smooth: false,
            ..request.clone()
        };
        let size = self.model.input_size();
        let rounds = aug_smooth::AUGMENTATIONS.len();
        let mut all: Vec<Vec<Explanation>> = Vec::with_capacity(rounds);
        for (round, &augmentation) in aug_smooth::AUGMENTATIONS.iter().enumerate() {
            let augmented = self.prepare_variant(
                prepared,
                aug_smooth::augment(prepared.input(), augmentation),
            )?;
            let mut maps = self.explain_or_stop(&augmented, &plain, &mut |done, total| {
                progress(round * total + done, rounds * total)
            })?;
            for e in &mut maps {
                e.map = aug_smooth::deaugment(&e.map, augmentation, size);
            }
            all.push(maps);
        }
        let mut out = all.remove(0);
        for (i, e) in out.iter_mut().enumerate() {
            let mut maps = vec![e.map.clone()];
            maps.extend(all.iter().map(|r| r[i].map.clone()));
            e.map = scaled::mean(&maps);
            e.ms += all.iter().map(|r| r[i].ms).sum::<f64>();
            e.convergence_delta = None;
            e.label.push_str("+aug-smooth");
        }
        Ok(out)
    }

    /// [`Explainer::explain`] with a noise tunnel: the request once per noisy copy of the input
    /// (the baseline stays), the maps combined (labels gain `+smoothgrad`, ...).
    fn explain_noise_tunneled(
        &self,
        prepared: &Prepared,
        request: &Request,
        tunnel: NoiseTunnel,
        progress: Progress,
    ) -> Result<Vec<Explanation>> {
        // Pixel IG's channels are combined one by one, as Captum combines its attribution
        // tensor, and summed afterwards.
        // (Under aug-smoothing each map is already a scaled plane: those are combined.)
        let per_channel = !request.aug_smooth;
        let plain = Request {
            noise_tunnel: None,
            ig_channels: per_channel || request.ig_channels,
            ..request.clone()
        };
        let x = prepared.input();
        let dims = x.dims();
        let per_sample: usize = dims.iter().product();
        let mut out: Vec<Explanation> = Vec::new();
        let mut sums: Vec<noise_tunnel::Sums> = Vec::new();
        for j in 0..tunnel.samples {
            // Sample j's stretch of the one sequence, drawn on its own: memory stays one image.
            let noise =
                crate::cam::random::standard_normals(request.seed, j * per_sample, per_sample);
            let noise = Tensor::<4>::from_data(
                burn::tensor::TensorData::new(noise, dims),
                self.model.device(),
            );
            let sample =
                self.prepare_variant(prepared, x.clone().add(noise.mul_scalar(tunnel.stdev)))?;
            let maps = self.explain_or_stop(&sample, &plain, &mut |done, total| {
                progress(j * total + done, tunnel.samples * total)
            })?;
            if j == 0 {
                sums = vec![noise_tunnel::Sums::default(); maps.len()];
                out = maps.clone();
                out.iter_mut().for_each(|e| e.ms = 0.0);
            }
            for ((e, sum), m) in out.iter_mut().zip(&mut sums).zip(&maps) {
                sum.add(&m.map);
                e.ms += m.ms;
            }
        }
        let channels = dims[1];
        for (e, sum) in out.iter_mut().zip(&sums) {
            e.map.values = sum.combine(tunnel.kind);
            if e.method.is_pixel() && per_channel && !request.ig_channels {
                e.map = sum_channels(&e.map, channels);
            }
            e.convergence_delta = None;
            e.label = format!("{}+{}", e.label, tunnel.kind.name());
        }
        Ok(out)
    }

    /// `prepared`'s photo and baseline with the input `x` instead (an augmented or noisy copy),
    /// run through the network once.
    fn prepare_variant(&self, prepared: &Prepared, x: Tensor<4>) -> Result<Prepared> {
        self.start_prepare_inputs(prepared.photo.clone(), x, prepared.baseline().clone())?
            .finish_blocking(self)
    }

    /// Starts `request` as a stepper, for callers that must not block between chunks.
    pub fn start<'a>(
        &'a self,
        prepared: &'a Prepared,
        request: &Request,
    ) -> Result<Explaining<'a>> {
        self.check_request(request)?;
        self.check_regions(prepared, request)?;
        if request.aug_smooth || request.noise_tunnel.is_some() {
            return Err(Error::InvalidOption(
                "aug-smoothing and a noise tunnel run through Explainer::explain, not the stepper"
                    .into(),
            ));
        }
        if self.takes_default_layers(request) {
            let request = Request {
                layers: self.default_layers.clone(),
                ..request.clone()
            };
            return Explaining::new(self, prepared, &request);
        }
        Explaining::new(self, prepared, request)
    }

    /// Whether `request` names no layer and so explains the explainer's several default ones
    /// (a detector's neck).
    fn takes_default_layers(&self, request: &Request) -> bool {
        request.layer.is_none() && request.layers.is_empty() && !self.default_layers.is_empty()
    }

    /// For a segmenter, refuses a target class without a region at `prepared` (its scores
    /// summed over no pixel: nothing to explain).
    ///
    /// For a detector, refuses a target past its detections.
    fn check_regions(&self, prepared: &Prepared, request: &Request) -> Result<()> {
        if let Some(detections) = prepared.detections() {
            if request.region.is_some() {
                return Err(Error::InvalidOption(Message::from(
                    "a region applies to a segmenter's classes; this model is a detector, whose targets are its detections",
                )));
            }
            if let Some(&t) = request.targets.iter().find(|&&t| t >= detections.len()) {
                return Err(Error::InvalidOption(Message::from(format!(
                    "target {t} is not a detection: the image has {} above the confidence threshold",
                    detections.len()
                ))));
            }
            return Ok(());
        }
        let Some(regions) = prepared.regions() else {
            return match request.region {
                Some(_) => Err(Error::InvalidOption(Message::from(
                    "a region applies to a segmenter's classes; this model is a classifier",
                ))),
                None => Ok(()),
            };
        };
        if let Some(mask) = &request.region {
            let [h, w] = self.model.output_plane();
            if mask.len() != h * w {
                return Err(Error::InvalidOption(Message::from(format!(
                    "the region holds {} pixels but the model's output plane is {w}x{h} = {} (the model's input after resize and crop): give a mask of that size",
                    mask.len(),
                    h * w
                ))));
            }
            if mask.iter().all(|&v| v == 0.0) {
                return Err(Error::InvalidOption(Message::from(
                    "the region is empty (no non-zero pixel): mark the pixels to explain",
                )));
            }
            return Ok(());
        }
        let pixels = regions.pixels();
        match request.targets.iter().find(|&&t| pixels.get(t) == Some(&0)) {
            None => Ok(()),
            Some(&t) => {
                let present: Vec<String> = regions
                    .present()
                    .iter()
                    .map(|&c| format!("{c} ({})", labels::label_of(&self.labels, c)))
                    .collect();
                Err(Error::InvalidOption(Message::from(format!(
                    "class {t} ({}) has no region in this image (no pixel where it scores highest), so there is nothing to explain; the classes present: {}",
                    labels::label_of(&self.labels, t),
                    present.join(", ")
                ))))
            }
        }
    }

    /// Checks `request` against the model before any work: its options, its targets, its
    /// layers.
    fn check_request(&self, request: &Request) -> Result<()> {
        let detector = self.model.detector().is_some();
        // A detector's targets are detections, checked against the photo's.
        request.check(if detector {
            usize::MAX
        } else {
            self.model.num_classes()
        })?;
        let kind = if detector { "detector" } else { "segmenter" };
        let things = if detector {
            "detections"
        } else {
            "class regions"
        };
        let dense = detector || self.model.is_segmenter();
        if dense && (request.aug_smooth || request.noise_tunnel.is_some()) {
            return Err(Error::InvalidOption(Message::from(format!(
                "aug-smoothing and the noise tunnel change the photo, which moves a {kind}'s {things}; they do not explain {kind}s yet"
            ))));
        }
        if dense && let Some(m) = request.methods.iter().find(|m| !m.explains_segmenters()) {
            return Err(Error::InvalidOption(Message::from(format!(
                "{} compares a classifier's classes and does not explain a {kind}; pick another method",
                m.name()
            ))));
        }
        if !crate::onnx::on_plain_cpu(self.model.device())
            && let Some(m) = request.methods.iter().find(|m| m.cpu_only())
        {
            return Err(Error::MethodUnavailable(format!(
                "{} runs on the CPU backend only: its Hessian-vector product comes from igcam's own reverse pass, and Burn's autodiff on other devices is first-order; explain on the CPU or pick another method",
                m.display()
            )));
        }
        for layer in request.layer.iter().chain(&request.layers) {
            self.model.layer_shape(layer)?;
        }
        Ok(())
    }
}

/// Activations at a layer and the tensors the rest of the graph still needs.
struct LayerState {
    layer: String,
    activations: Tensor<4>,
    env: Env,
}

/// A photo run through the network, its logits still on the device.
pub struct Preparing {
    prepared: Prepared,
    logits: Tensor<2>,
    /// The model's classes (a segmenter's logits hold a plane of scores per class).
    classes: usize,
    /// A detector's layout and thresholds.
    detector: Option<(crate::task::detect::DetectLayout, DetectOptions)>,
}

impl Preparing {
    /// The logits `[1, classes]`, to read back.
    pub fn logits(&self) -> Tensor<2> {
        self.logits.clone()
    }

    /// Completes the photo with its logits read back (`classes` values; a segmenter's: a
    /// plane of scores per class, its classes then ranked by their region's size).
    pub fn finish(mut self, logits: Vec<f32>, labels: &[String]) -> Prepared {
        if let Some((layout, options)) = self.detector {
            let detections = layout.detect(&logits, &options);
            self.prepared.ranked = detected_ranking(&detections, self.classes, labels);
            self.prepared.detections = Some(detections);
            self.prepared.logits = logits;
            return self.prepared;
        }
        let plane = logits.len() / self.classes.max(1);
        let regions = (plane > 1).then(|| Regions::of(&logits, self.classes, plane));
        self.prepared.ranked = match &regions {
            Some(r) => r.ranked(&logits, labels),
            None => labels::ranked(&logits, labels),
        };
        self.prepared.regions = regions;
        self.prepared.logits = logits;
        self.prepared
    }

    /// Reads the logits back (blocking) and completes the photo.
    fn finish_blocking(self, explainer: &Explainer) -> Result<Prepared> {
        let logits = crate::onnx::host_values(self.logits())?;
        Ok(self.finish(logits, &explainer.labels))
    }
}

/// A photo fitted to the model and run through it once.
pub struct Prepared {
    /// The photo at the model's input size.
    pub photo: RgbImage,
    /// Where the photo came from in the original image (resize and crop).
    pub geometry: Geometry,
    /// The logits of the photo.
    pub logits: Vec<f32>,
    /// Every class, best first.
    pub ranked: Vec<Prediction>,
    /// A segmenter's class regions at the photo (`None` for a classifier).
    regions: Option<Regions>,
    /// A detector's kept detections at the photo, the best first (`None` for another model).
    detections: Option<Vec<Detection>>,
    /// The photo and the baseline, the ends of the path.
    path: PathEnds,
    /// Each of [`Explainer::layers`] as the photo's pass left it.
    at_input: Vec<LayerState>,
}

impl Prepared {
    /// The best `k` classes.
    pub fn top(&self, k: usize) -> &[Prediction] {
        &self.ranked[..k.min(self.ranked.len())]
    }

    /// The regions of a segmenter's output at the photo, worked out once when it was
    /// prepared (`None` for a classifier).
    pub fn regions(&self) -> Option<&Regions> {
        self.regions.as_ref()
    }

    /// A detector's detections at the photo (confidence threshold and NMS applied), the best
    /// first: what its targets index (`None` for a classifier or a segmenter).
    pub fn detections(&self) -> Option<&[Detection]> {
        self.detections.as_deref()
    }

    /// Target `target` of a request as a class prediction: the class itself, or for a
    /// detector its detection's class and confidence.
    pub fn target_prediction(&self, target: usize) -> Prediction {
        match self.detections().and_then(|d| d.get(target)) {
            Some(d) => Prediction {
                logit: d.score,
                prob: d.score,
                ..self.prediction(d.class)
            },
            None => self.prediction(target),
        }
    }

    /// Class `index` as [`Prepared::ranked`] scores it (a segmenter's: its region's share and
    /// mean score); for an index past the classes, `class N` with no score.
    pub fn prediction(&self, index: usize) -> Prediction {
        self.ranked
            .iter()
            .find(|p| p.index == index)
            .cloned()
            .unwrap_or_else(|| Prediction {
                index,
                label: format!("class {index}"),
                logit: f32::NAN,
                prob: 0.0,
            })
    }

    /// The normalised photo `[1, C, H, W]` on the model's device.
    pub fn input(&self) -> &Tensor<4> {
        &self.path.x
    }

    /// The normalised baseline `[1, C, H, W]`.
    pub fn baseline(&self) -> &Tensor<4> {
        &self.path.b
    }
}

/// What to explain: targets × methods, and the path.
#[derive(Clone, Debug)]
pub struct Request {
    /// Class indices.
    pub targets: Vec<usize>,
    /// Methods (repeats are ignored, as are repeated targets).
    pub methods: Vec<Method>,
    /// Integrate every CAM method along the path (IG-CAM and IG always do).
    pub integrate: bool,
    /// Path steps `m`.
    pub steps: usize,
    /// Where the path's points sit and what each weighs (Captum's `method`).
    pub quadrature: Quadrature,
    /// Allow more than [`MAX_STEPS_UNFORCED`] steps.
    pub force: bool,
    /// Explain this layer instead of the explainer's.
    pub layer: Option<String>,
    /// Several layers at once (two or more): each CAM map is the mean of the per-layer maps,
    /// each min-max scaled and resized to the input, then scaled again (pytorch-grad-cam with
    /// several `target_layers`): a map at the input's resolution. Empty: the single layer.
    pub layers: Vec<String>,
    /// Each map from the first principal component of the weighted activations instead of
    /// their channel sum (pytorch-grad-cam's `eigen_smooth`).
    pub eigen_smooth: bool,
    /// Each map the mean over six augmented inputs, flipped and scaled, at the input's
    /// resolution (pytorch-grad-cam's `aug_smooth`; [`crate::cam::aug_smooth`]).
    pub aug_smooth: bool,
    /// Captum's noise tunnel around every method ([`crate::cam::noise_tunnel`]).
    pub noise_tunnel: Option<NoiseTunnel>,
    /// The seed of everything random (the noise tunnel's noise, RandomCAM's weights).
    pub seed: u64,
    /// Pixel IG's map keeps the colour channels, stacked (`C·H × W`: Captum's attribution
    /// tensor) instead of summing them.
    pub ig_channels: bool,
    /// Path points per chunk instead of the explainer's.
    pub batch: Option<usize>,
    /// A clock for the per-map `ms` (the core never reads one by itself); `None`: `ms` is 0.
    pub clock: Option<Clock>,
    /// A segmenter's region of the user's own, one weight per pixel of the output plane
    /// (row-major, non-zero inside): each target's scores are summed over it instead of over
    /// the target's own region (pytorch-grad-cam's `SemanticSegmentationTarget` with a mask).
    pub region: Option<Arc<[f32]>>,
}

impl Request {
    /// A request for `methods` on `targets` with `steps` path steps.
    pub fn new(targets: Vec<usize>, methods: Vec<Method>, steps: usize) -> Self {
        Self {
            targets,
            methods,
            integrate: false,
            steps,
            quadrature: Quadrature::default(),
            force: false,
            layer: None,
            layers: Vec::new(),
            eigen_smooth: false,
            aug_smooth: false,
            noise_tunnel: None,
            seed: 0,
            ig_channels: false,
            batch: None,
            clock: None,
            region: None,
        }
    }

    /// Checks the request before any work is done.
    pub fn check(&self, classes: usize) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::InvalidOption(
                Message::setting(Setting::Steps).text(" must be at least 1 (the paper uses 50)"),
            ));
        }
        if self.steps > MAX_STEPS_UNFORCED && !self.force {
            return Err(Error::InvalidOption(
                Message::setting(Setting::Steps)
                    .text(format!(
                        " {} is more than {MAX_STEPS_UNFORCED} (hours of work); ",
                        self.steps
                    ))
                    .set(Setting::Force)
                    .text(" to run it anyway"),
            ));
        }
        check_batch(self.batch)?;
        if self.methods.iter().any(|m| m.integrates(self.integrate)) {
            self.quadrature.check(self.steps)?;
        }
        if let Some(t) = self.noise_tunnel {
            if t.samples == 0 {
                return Err(Error::InvalidOption(
                    Message::setting(Setting::NtSamples).text(" must be at least 1"),
                ));
            }
            if !(t.stdev.is_finite() && t.stdev >= 0.0) {
                return Err(Error::InvalidOption(
                    Message::setting(Setting::NtStdev).text(format!(
                        " must be a finite number at least 0, not {}",
                        t.stdev
                    )),
                ));
            }
        }
        if self.methods.is_empty() {
            return Err(Error::InvalidOption("no method to run".into()));
        }
        if self.targets.is_empty() {
            return Err(Error::InvalidOption("no target to explain".into()));
        }
        if let Some(&index) = self.targets.iter().find(|&&t| t >= classes) {
            return Err(Error::TargetOutOfRange { index, classes });
        }
        Ok(())
    }
}

/// A detector's classes ranked by their best detection's confidence (`logit` and `prob`
/// both; 0 for a class without a detection).
fn detected_ranking(
    detections: &[Detection],
    classes: usize,
    labels: &[String],
) -> Vec<Prediction> {
    let mut best = vec![0.0f32; classes];
    for d in detections {
        best[d.class] = best[d.class].max(d.score);
    }
    let mut out: Vec<Prediction> = best
        .iter()
        .enumerate()
        .map(|(c, &score)| Prediction {
            index: c,
            label: labels::label_of(labels, c),
            logit: score,
            prob: score,
        })
        .collect();
    out.sort_by(|a, b| b.prob.total_cmp(&a.prob).then(a.index.cmp(&b.index)));
    out
}

/// The classes detected, for an error message.
fn detected_classes(detections: &[Detection], labels: &[String]) -> String {
    let classes = unique(detections.iter().map(|d| d.class));
    if classes.is_empty() {
        return "nothing was detected".into();
    }
    let names: Vec<String> = classes
        .iter()
        .map(|&c| format!("{c} ({})", labels::label_of(labels, c)))
        .collect();
    format!("the classes detected: {}", names.join(", "))
}

/// A map of `channels` stacked planes (`C·H × W`) summed into one `H × W` plane.
fn sum_channels(map: &CamMap, channels: usize) -> CamMap {
    let height = map.height / channels;
    let plane = height * map.width;
    let mut values = vec![0.0; plane];
    for stacked in map.values.chunks_exact(plane) {
        for (v, s) in values.iter_mut().zip(stacked) {
            *v += s;
        }
    }
    CamMap {
        height,
        width: map.width,
        values,
    }
}

/// Refuses a chunk of no path points.
fn check_batch(batch: Option<usize>) -> Result<()> {
    if batch == Some(0) {
        return Err(Error::InvalidOption(
            Message::setting(Setting::Batch).text(" must be at least 1"),
        ));
    }
    Ok(())
}

/// One map of a request: [`CamMap`] on the host once finished ([`Explaining::finish`] hands
/// them out on the device, as `Explanation<Tensor<4>>`, for callers that read back
/// asynchronously).
#[derive(Clone, Debug)]
pub struct Explanation<M = CamMap> {
    /// The explained class.
    pub target: usize,
    /// The method.
    pub method: Method,
    /// The method's output label (`igcam`, `gradcam`, `integrated-gradcampp`, ...).
    pub label: String,
    /// The explained tensor: the layer, or `input` for pixel-level Integrated Gradients.
    pub layer: String,
    /// Path points used (1 for a plain CAM method).
    pub steps: usize,
    /// The raw map (layer resolution; input resolution for IG): a [`CamMap`], or `[1, 1, h,
    /// w]` on the device.
    pub map: M,
    /// This map's share of the wall time, when the request had a clock: every chunk's time is
    /// split evenly among the maps it served.
    pub ms: f64,
    /// Pixel-level Integrated Gradients' convergence delta, `sum(map) - (S_c(x) - S_c(b))`
    /// (Captum's `return_convergence_delta`), once read back to the host; `None` for the
    /// other methods.
    pub convergence_delta: Option<f64>,
}

impl<M> Explanation<M> {
    /// The same explanation with its map replaced by `f(map)` (a read-back).
    pub fn try_map<N, E>(
        self,
        f: impl FnOnce(M) -> std::result::Result<N, E>,
    ) -> std::result::Result<Explanation<N>, E> {
        Ok(Explanation {
            target: self.target,
            method: self.method,
            label: self.label,
            layer: self.layer,
            steps: self.steps,
            map: f(self.map)?,
            ms: self.ms,
            convergence_delta: self.convergence_delta,
        })
    }
}

/// A served CAM slot: its index, its method and what its gradient is taken of.
type Served = (usize, &'static dyn CamMethod, Objective);

/// One map being computed.
struct Slot {
    target: usize,
    /// What the gradient is taken of ([`Explainer::objective`]).
    objective: Objective,
    method: Method,
    /// Which of the request's layers a CAM map explains (0 for pixel IG and FullGrad).
    layer: usize,
    integrated: bool,
    sum: Option<Tensor<4>>,
    ms: f64,
}

/// One unit of work.
#[derive(Clone, Copy, Debug)]
enum Job {
    /// Plain CAM maps of every target at the input (from the prepared pass).
    Input,
    /// A chunk of path points for every integrated CAM map.
    Path { from: usize, to: usize },
    /// A chunk of path points for the IG map of slot `slot`.
    Ig { slot: usize, from: usize, to: usize },
    /// The FullGrad map of slot `slot`.
    FullGrad { slot: usize },
}

/// A request in progress, one chunk per [`Explaining::step`]. Running sums stay on the device,
/// so a browser can yield between chunks and read the maps back asynchronously.
pub struct Explaining<'a> {
    explainer: &'a Explainer,
    prepared: &'a Prepared,
    /// The explained layers: one, or several from one pass ([`Request::layers`]).
    layers: Vec<String>,
    slots: Vec<Slot>,
    jobs: Vec<Job>,
    next: usize,
    alphas: Vec<f32>,
    /// Each path point's weight in the sums: `m * s_i` for the integrated CAM maps (1 for the
    /// default left Riemann sum), `s_i` for IG's gradients.
    step_sizes: Vec<f64>,
    eigen_smooth: bool,
    seed: u64,
    ig_channels: bool,
    /// Path points (or re-run images) per chunk.
    batch: usize,
    done: usize,
    total: usize,
    clock: Option<Clock>,
}

impl<'a> Explaining<'a> {
    fn new(explainer: &'a Explainer, prepared: &'a Prepared, request: &Request) -> Result<Self> {
        let methods = unique(request.methods.iter().copied());
        let targets = unique(request.targets.iter().copied());
        let layers = if request.layers.len() > 1 {
            unique(request.layers.iter().cloned())
        } else {
            vec![
                request
                    .layer
                    .clone()
                    .unwrap_or_else(|| explainer.layer.clone()),
            ]
        };
        let mut slots = Vec::new();
        for &target in &targets {
            for &method in &methods {
                let per_layer = if method.cam().is_some() {
                    layers.len()
                } else {
                    1
                };
                let objective =
                    explainer.objective(method, target, prepared, request.region.as_ref());
                for layer in 0..per_layer {
                    slots.push(Slot {
                        target,
                        objective: objective.clone(),
                        method,
                        layer,
                        integrated: method.integrates(request.integrate),
                        sum: None,
                        ms: 0.0,
                    });
                }
            }
        }
        let integrates = slots.iter().any(|s| s.integrated || s.method.is_pixel());
        let (alphas, step_sizes) = if integrates {
            request.quadrature.points(request.steps)
        } else {
            (Vec::new(), Vec::new())
        };
        let batch = explainer
            .model
            .fit_chunk(request.batch.unwrap_or(explainer.batch));
        let chunks = |f: &mut dyn FnMut(usize, usize)| {
            let mut from = 0;
            while from < alphas.len() {
                let to = (from + batch).min(alphas.len());
                f(from, to);
                from = to;
            }
        };
        let mut jobs = Vec::new();
        if slots
            .iter()
            .any(|s| s.method.cam().is_some() && !s.integrated)
        {
            jobs.push(Job::Input);
        }
        if slots
            .iter()
            .any(|s| s.method.cam().is_some() && s.integrated)
        {
            chunks(&mut |from, to| jobs.push(Job::Path { from, to }));
        }
        for (slot, s) in slots.iter().enumerate() {
            if s.method.is_pixel() {
                chunks(&mut |from, to| jobs.push(Job::Ig { slot, from, to }));
            }
            if s.method.is_fullgrad() {
                jobs.push(Job::FullGrad { slot });
            }
        }
        let total = jobs.iter().map(|j| j.units()).sum();
        Ok(Self {
            explainer,
            prepared,
            layers,
            slots,
            jobs,
            next: 0,
            alphas,
            step_sizes,
            eigen_smooth: request.eigen_smooth,
            seed: request.seed,
            ig_channels: request.ig_channels,
            batch,
            done: 0,
            total,
            clock: request.clock,
        })
    }

    /// Runs every chunk, reporting `(done, total)` after each, and reads the maps back.
    fn run_to_end(mut self, progress: Progress) -> Result<Vec<Explanation>> {
        while !self.is_done() {
            let (done, total) = self.step()?;
            progress(done, total)?;
        }
        self.finish()?.into_explanations()
    }

    /// Progress units (path points; 1 for the pass at the input) done so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Progress units in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether every chunk has run.
    pub fn is_done(&self) -> bool {
        self.next >= self.jobs.len()
    }

    /// Runs the next chunk; returns `(steps done, steps in total)`.
    pub fn step(&mut self) -> Result<(usize, usize)> {
        let Some(&job) = self.jobs.get(self.next) else {
            return Ok((self.done, self.total));
        };
        let start = self.clock.map(|c| c());
        let served = match job {
            Job::Input => self.run_input()?,
            Job::Path { from, to } => self.run_path(from, to)?,
            Job::Ig { slot, from, to } => self.run_ig(slot, from, to)?,
            Job::FullGrad { slot } => self.run_fullgrad(slot)?,
        };
        if let (Some(start), Some(clock)) = (start, self.clock) {
            let share = (clock() - start) / served.len().max(1) as f64;
            for i in served {
                self.slots[i].ms += share;
            }
        }
        self.next += 1;
        self.done += job.units();
        Ok((self.done, self.total))
    }

    /// `[B, 1, 1, 1]` weights of a chunk's path points on the model's device.
    fn point_weights(&self, weights: &[f64]) -> Tensor<4> {
        let values: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
        let n = values.len();
        Tensor::from_data(
            burn::tensor::TensorData::new(values, [n, 1, 1, 1]),
            self.explainer.model.device(),
        )
    }

    /// Adds `part` to slot `i`'s running sum.
    fn accumulate(&mut self, i: usize, part: Tensor<4>) {
        let slot = &mut self.slots[i];
        slot.sum = Some(match slot.sum.take() {
            Some(s) => s.add(part),
            None => part,
        });
    }

    /// The slots a CAM job serves: plain (`integrated == false`) or integrated ones.
    fn cam_slots(&self, integrated: bool) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                self.slots[i].method.cam().is_some() && self.slots[i].integrated == integrated
            })
            .collect()
    }

    /// Every CAM map of `served` from one pass: `at` holds each explained layer's activations
    /// and the tensors the rest of the graph needs after it. The head's reverse pass runs once
    /// per objective for all the layers (not at all when no method of `served` uses
    /// gradients), and a map that does not depend on the target (Eigen-CAM) is computed once
    /// for all of them. `chunk`: the path points `from..to` the activations are of (`None`: the
    /// photo itself), which also give each point's weight in the integrated sums.
    fn cams_at(
        &mut self,
        served: &[usize],
        at: &[(Tensor<4>, Env)],
        chunk: Option<(usize, usize)>,
    ) -> Result<()> {
        // Each served slot with its method and objective (a target's logit, or Finer-CAM's
        // difference), computed once for every layer; the gradients only of the objectives
        // whose methods use them.
        let served: Vec<Served> = served
            .iter()
            .filter_map(|&i| {
                let slot = &self.slots[i];
                Some((i, slot.method.cam()?, slot.objective.clone()))
            })
            .collect();
        let point_weights = chunk.and_then(|(from, to)| {
            let m = self.alphas.len() as f64;
            let scales: Vec<f64> = self.step_sizes[from..to].iter().map(|s| m * s).collect();
            scales
                .iter()
                .any(|&w| w as f32 != 1.0)
                .then(|| self.point_weights(&scales))
        });
        let weights = point_weights.as_ref();
        let (gradient, other): (Vec<Served>, Vec<Served>) = served
            .into_iter()
            .partition(|(_, cam, _)| cam.uses_gradients());
        let on_layer = |served: &[Served], slots: &[Slot], layer: usize| -> Vec<Served> {
            served
                .iter()
                .filter(|(i, _, _)| slots[*i].layer == layer)
                .cloned()
                .collect()
        };
        // The maps without gradients, every objective at once (one Eigen-CAM map serves all).
        for (layer, (activations, env)) in at.iter().enumerate() {
            let served = on_layer(&other, &self.slots, layer);
            if !served.is_empty() {
                self.cams_from(&served, (layer, activations, env), &[], (chunk, weights))?;
            }
        }
        // The others an objective at a time, as the head's reverse pass hands out its
        // gradients: only one objective's are held (a detector's hundreds of detections).
        let wanted = unique(gradient.iter().map(|(_, _, o)| o.clone()));
        if wanted.is_empty() {
            return Ok(());
        }
        let explainer: &Explainer = self.explainer;
        let model = &explainer.model;
        let names = self.layers.clone();
        let layers: Vec<(&str, &Tensor<4>, &Env)> = names
            .iter()
            .zip(at)
            .map(|(l, (a, env))| (l.as_str(), a, env))
            .collect();
        model.objective_gradients_layers(&layers, &wanted, &mut |first, group| {
            // Each objective's map at each layer, side by side.
            let mut jobs = Vec::new();
            for (k, gradients) in (first..).zip(group) {
                let objective = &wanted[k];
                for (layer, g) in gradients.into_iter().enumerate() {
                    let served: Vec<Served> = on_layer(&gradient, &self.slots, layer)
                        .into_iter()
                        .filter(|(_, _, o)| o == objective)
                        .collect();
                    jobs.push((layer, served, [(objective.clone(), g)]));
                }
            }
            let this = &*self;
            let parts = par::each_on_one_thread(&jobs, |(layer, served, gradients)| {
                let (activations, env) = &at[*layer];
                let at = (*layer, activations, env);
                this.cam_parts(served, at, gradients, (chunk, weights))
            });
            for part in parts {
                for (i, part) in part? {
                    self.accumulate(i, part);
                }
            }
            Ok(())
        })
    }

    /// The CAM maps of `served` at layer `layer` (its activations and `env`), from the
    /// gradients of each objective that needs them, added to their slots; `chunk` and its
    /// points' weights as in [`Explaining::cams_at`].
    fn cams_from(
        &mut self,
        served: &[Served],
        at: (usize, &Tensor<4>, &Env),
        gradients: &[(Objective, LayerGradient)],
        points: (Option<(usize, usize)>, Option<&Tensor<4>>),
    ) -> Result<()> {
        for (i, part) in self.cam_parts(served, at, gradients, points)? {
            self.accumulate(i, part);
        }
        Ok(())
    }

    /// [`Explaining::cams_from`]'s maps, each with its slot, not yet added.
    fn cam_parts(
        &self,
        served: &[Served],
        (layer, activations, env): (usize, &Tensor<4>, &Env),
        gradients: &[(Objective, LayerGradient)],
        (chunk, point_weights): (Option<(usize, usize)>, Option<&Tensor<4>>),
    ) -> Result<Vec<(usize, Tensor<4>)>> {
        let model = &self.explainer.model;
        let alphas = chunk.map(|(from, to)| &self.alphas[from..to]);
        let objectives = unique(served.iter().map(|(_, _, o)| o.clone()));
        let points = activations.dims()[0];
        let mut target_free: Vec<(Method, Tensor<4>)> = Vec::new();
        let mut parts: Vec<(usize, Tensor<4>)> = Vec::with_capacity(served.len());
        for objective in &objectives {
            let gradients = gradients
                .iter()
                .find(|(o, _)| o == objective)
                .map(|(_, g)| g.clone());
            let target = objective.class();
            let head = Head {
                model,
                at: (&self.layers[layer], env, points),
                objective,
                path: (&self.prepared.path, alphas),
                chunk: self.batch,
            };
            let first_point = chunk.map_or(0, |(from, _)| from);
            let inputs = CamInputs {
                activations,
                gradients: gradients.as_ref(),
                head: &head,
                seed: self.seed ^ ((target as u64) << 32) ^ first_point as u64,
            };
            for (i, cam, _) in served.iter().filter(|(_, _, o)| o == objective) {
                let method = self.slots[*i].method;
                let known = target_free.iter().find(|(m, _)| *m == method);
                let part = match known {
                    Some((_, part)) => part.clone(),
                    None => model.phase("cam maps", || {
                        crate::cam::cam_map(*cam, &inputs, self.eigen_smooth, point_weights)
                    })?,
                };
                if !cam.uses_target() && known.is_none() {
                    target_free.push((method, part.clone()));
                }
                parts.push((*i, part));
            }
        }
        Ok(parts)
    }

    fn run_input(&mut self) -> Result<Vec<usize>> {
        let served = self.cam_slots(false);
        let prepared: Option<Vec<(Tensor<4>, Env)>> = self
            .layers
            .iter()
            .map(|l| {
                let state = self.prepared.at_input.iter().find(|s| &s.layer == l)?;
                Some((state.activations.clone(), state.env.clone()))
            })
            .collect();
        let at = if let Some(at) = prepared {
            at
        } else {
            let model = &self.explainer.model;
            let layers: Vec<&str> = self.layers.iter().map(String::as_str).collect();
            model.phase("forward to layer", || {
                model.forward_to_layers(self.prepared.path.x.clone(), &layers)
            })?
        };
        self.cams_at(&served, &at, None)?;
        Ok(served)
    }

    fn run_path(&mut self, from: usize, to: usize) -> Result<Vec<usize>> {
        let served = self.cam_slots(true);
        let model = &self.explainer.model;
        let alphas = &self.alphas[from..to];
        let layers: Vec<&str> = self.layers.iter().map(String::as_str).collect();
        let at = model.phase("forward to layer", || {
            model.forward_path_to_layers(&self.prepared.path, alphas, &layers)
        })?;
        self.cams_at(&served, &at, Some((from, to)))?;
        Ok(served)
    }

    fn run_ig(&mut self, slot: usize, from: usize, to: usize) -> Result<Vec<usize>> {
        let model = &self.explainer.model;
        let points = self.prepared.path.points(&self.alphas[from..to]);
        let grad = model.objective_input_gradient(points, &self.slots[slot].objective)?;
        let weights = self.point_weights(&self.step_sizes[from..to]);
        self.accumulate(slot, grad.mul(weights).sum_dim(0));
        Ok(vec![slot])
    }

    /// FullGrad's map of slot `slot`'s target at the photo.
    fn run_fullgrad(&mut self, slot: usize) -> Result<Vec<usize>> {
        let model = &self.explainer.model;
        let x = &self.prepared.path.x;
        let gradients = model.bias_gradients(x.clone(), &self.slots[slot].objective)?;
        let smooth = self.eigen_smooth;
        let map = model.phase("cam maps", || fullgrad::fullgrad_map(x, gradients, smooth))?;
        let (h, w) = (map.height, map.width);
        let data = burn::tensor::TensorData::new(map.values, [1, 1, h, w]);
        self.accumulate(slot, Tensor::from_data(data, model.device()));
        Ok(vec![slot])
    }

    /// The maps, still on the device (`[1, 1, h, w]` each), in request order. Call once
    /// [`Explaining::is_done`].
    pub fn finish(self) -> Result<Finished> {
        if !self.is_done() {
            debug_assert!(false, "finish() called before every chunk ran");
            return Err(Error::Internal(
                "finish() called before every chunk ran".into(),
            ));
        }
        let steps = self.alphas.len();
        let path = &self.prepared.path;
        let model = &self.explainer.model;
        // The ends' logits for pixel IG's convergence delta: the baseline's takes one forward.
        let ends = if self.slots.iter().any(|s| s.method.is_pixel()) {
            let at_baseline = model.phase("baseline forward (IG delta)", || {
                model.forward(path.b.clone())
            })?;
            let logits = &self.prepared.logits;
            let data = burn::tensor::TensorData::new(logits.clone(), [1, logits.len()]);
            Some((Tensor::<2>::from_data(data, model.device()), at_baseline))
        } else {
            None
        };
        let mut maps = Vec::with_capacity(self.slots.len());
        let mut gaps = Vec::with_capacity(self.slots.len());
        for s in self.slots {
            // `S(x) - S(b)` of the slot's objective, for pixel IG.
            gaps.push(match &ends {
                Some((x, b)) if s.method.is_pixel() => Some(
                    s.objective
                        .per_image(x.clone())
                        .sub(s.objective.per_image(b.clone())),
                ),
                _ => None,
            });
            let sum = s
                .sum
                .ok_or_else(|| Error::Internal(format!("the map of {} has no part", s.method)))?;
            let (map, layer, steps) = if s.method.is_pixel() {
                // The gradients were summed with the quadrature's step sizes.
                let ig = path.x.clone().sub(path.b.clone()).mul(sum);
                let ig = if self.ig_channels {
                    let [_, c, h, w] = ig.dims();
                    ig.reshape([1, 1, c * h, w])
                } else {
                    ig.sum_dim(1)
                };
                (ig, "input".to_string(), steps)
            } else if s.method.is_fullgrad() {
                (sum, "input".to_string(), 1)
            } else {
                let layer = self.layers[s.layer].clone();
                (sum, layer, if s.integrated { steps } else { 1 })
            };
            maps.push(Explanation {
                target: s.target,
                method: s.method,
                label: if s.method.eigen_smoothed(self.eigen_smooth) {
                    format!("{}+eigen-smooth", s.method.label(s.integrated))
                } else {
                    s.method.label(s.integrated && !s.method.is_pixel())
                },
                layer,
                steps,
                map,
                ms: s.ms,
                convergence_delta: None,
            });
        }
        let layer_average = (self.layers.len() > 1).then(|| LayerAverage {
            size: self.explainer.model.input_size(),
            layers: self.layers,
        });
        Ok(Finished {
            maps,
            gaps,
            clock: self.clock,
            layer_average,
        })
    }
}

/// The model again for one target and one batch of path points ([`HeadScores`]).
struct Head<'a> {
    model: &'a OnnxModel,
    at: (&'a str, &'a Env, usize),
    objective: &'a Objective,
    /// The batch's path points: the photo itself (`None`) or these positions on the path.
    path: (&'a PathEnds, Option<&'a [f32]>),
    chunk: usize,
}

impl HeadScores for Head<'_> {
    fn scores(&self, point: usize, activations: Tensor<4>) -> Result<Vec<f32>> {
        self.model.phase("head re-runs", || {
            self.model
                .head_scores(self.at, point, activations, self.objective)
        })
    }

    fn image(&self, point: usize) -> Tensor<4> {
        match self.path {
            (ends, Some(alphas)) => ends.points(&alphas[point..point + 1]),
            (ends, None) => ends.x.clone(),
        }
    }

    fn image_scores(&self, images: Tensor<4>) -> Result<Vec<f32>> {
        self.model.phase("network re-runs", || {
            let n = images.dims()[0];
            let mut scores = Vec::with_capacity(n);
            let mut first = 0;
            while first < n {
                let take = self.chunk.min(n - first);
                let logits = self.model.forward(images.clone().narrow(0, first, take))?;
                scores.extend(crate::onnx::host_values(self.objective.per_image(logits))?);
                first += take;
            }
            Ok(scores)
        })
    }

    fn chunk(&self) -> usize {
        self.chunk
    }

    fn hessian_product(&self, activations: &Tensor<4>) -> Result<Tensor<4>> {
        let (layer, env, _) = self.at;
        self.model
            .layer_hessian_product(layer, activations, env, self.objective)
    }
}

impl Job {
    /// Progress units: path points, or 1 for the pass at the input.
    fn units(&self) -> usize {
        match *self {
            Job::Input | Job::FullGrad { .. } => 1,
            Job::Path { from, to } | Job::Ig { from, to, .. } => to - from,
        }
    }
}

/// Every map of a finished request, still on the device.
pub struct Finished {
    /// The maps in request order.
    pub maps: Vec<Explanation<Tensor<4>>>,
    /// For each pixel IG map, its objective's `S(x) - S(b)` (`[1, 1]`, still on the device).
    gaps: Vec<Option<Tensor<2>>>,
    clock: Option<Clock>,
    /// With several layers, what makes one map of each CAM map's per-layer ones, once they
    /// are read back (`maps` holds a CAM method's layers in a row).
    pub layer_average: Option<LayerAverage>,
}

/// Several layers' CAM maps made one, as pytorch-grad-cam averages several `target_layers`:
/// each map scaled to [0, 1] and resized to the input, their mean scaled again (a map at the
/// input's resolution, its layer the list). Maps of the input (pixel IG, FullGrad) pass
/// through.
#[derive(Clone, Debug)]
pub struct LayerAverage {
    layers: Vec<String>,
    size: [usize; 2],
}

impl LayerAverage {
    /// The maps of a request in [`Finished::maps`]'s order, read back, averaged over layers
    /// (each CAM map's runs of layers at once, spread over the threads: a detector's dozens
    /// of detections are each three maps resized to the input).
    pub fn apply(&self, maps: Vec<Explanation>) -> Vec<Explanation> {
        // A CAM map's layers come in a row; a map of the input stands alone.
        let mut runs: Vec<Vec<Explanation>> = Vec::new();
        for e in maps {
            let same = runs.last().and_then(|r| r.first()).is_some_and(|o| {
                !e.method.explains_input() && o.method == e.method && o.target == e.target
            });
            match runs.last_mut() {
                Some(run) if same => run.push(e),
                _ => runs.push(vec![e]),
            }
        }
        let [height, width] = self.size;
        let layers = self.layers.len() as f32;
        let mut sums: Vec<Vec<f32>> = vec![Vec::new(); runs.len()];
        crate::kernels::par::par_chunks(&mut sums, 1, |i, sum| {
            if !runs[i][0].method.explains_input() {
                let maps: Vec<&CamMap> = runs[i].iter().map(|e| &e.map).collect();
                sum[0] = scaled::layer_mean(&maps, self.size, layers);
            }
        });
        runs.into_iter()
            .zip(sums)
            .map(|(run, values)| {
                let ms = run.iter().map(|e| e.ms).sum();
                let first = run.into_iter().next().expect("runs are not empty");
                if first.method.explains_input() {
                    return first;
                }
                Explanation {
                    map: CamMap {
                        height,
                        width,
                        values,
                    },
                    ms,
                    layer: self.layers.join(","),
                    ..first
                }
            })
            .collect()
    }
}

impl Finished {
    /// Reads every map back to the host (blocking); each map's read is added to its `ms`, and
    /// pixel IG's maps get their convergence delta.
    pub fn into_explanations(self) -> Result<Vec<Explanation>> {
        let clock = self.clock;
        let maps: Vec<Explanation> = self
            .maps
            .into_iter()
            .zip(self.gaps)
            .map(|(m, gap)| {
                let start = clock.map(|c| c());
                let mut e = m.try_map(CamMap::from_tensor)?;
                if let (Some(s), Some(c)) = (start, clock) {
                    e.ms += c() - s;
                }
                if let Some(gap) = gap {
                    let total: f64 = e.map.values.iter().map(|&v| v as f64).sum();
                    let gap = crate::onnx::host_values(gap)?
                        .first()
                        .copied()
                        .unwrap_or(0.0);
                    e.convergence_delta = Some(total - gap as f64);
                }
                Ok(e)
            })
            .collect::<Result<_>>()?;
        Ok(match &self.layer_average {
            Some(average) => average.apply(maps),
            None => maps,
        })
    }
}
