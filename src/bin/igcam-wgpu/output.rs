//! Files in and out: reading the model and images, writing PNG, NPY and JSON.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use igcam::cam::CamMap;
use igcam::labels::Prediction;
use igcam::onnx::OnnxModel;
use npyz::WriterBuilder;
use serde::Serialize;

use crate::args::{OutputArgs, Task};
use crate::assets;
use igcam::onnx::model_folder::ModelFolder;

/// Largest model file read (ONNX's own protobuf limit).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Largest image, label, annotation or results file read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// What a path is, when it is not a regular file.
fn special_kind(kind: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`], naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    read_capped(path, MAX_FILE_BYTES)
}

/// Reads a UTF-8 text file of at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| anyhow::anyhow!("`{}` is not UTF-8 text", path.display()))
}

/// Reads a regular file of at most `cap` bytes: a FIFO, a device or a folder is refused before
/// it is opened (reading one would hang or never end), and a file that grows past `cap` while
/// it is read is refused too.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display();
    let meta = fs::metadata(path).with_context(|| format!("cannot read `{shown}`"))?;
    if !meta.is_file() {
        bail!(
            "`{shown}` is {}, not a file; pass a regular file",
            special_kind(meta.file_type())
        );
    }
    let too_big =
        || anyhow::anyhow!("`{shown}` is larger than {cap} bytes, the limit for this input");
    if meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(cap + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read `{shown}`"))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// A model's file as read: its bytes, and the folder its external weights are read from.
pub struct ModelFile {
    /// The ONNX bytes.
    pub bytes: std::borrow::Cow<'static, [u8]>,
    /// The model's folder (`None`: the embedded model).
    folder: Option<ModelFolder>,
}

impl ModelFile {
    /// Where its external weights are read.
    pub fn external(&self) -> &dyn igcam::onnx::external::ExternalData {
        match &self.folder {
            Some(f) => f,
            None => &igcam::onnx::external::NoExternalData,
        }
    }
}

/// Loads `path`, or the embedded model when `None`; returns it with its display name and file.
pub fn load_model(
    path: Option<&Path>,
    choice: &OutputArgs,
    device: &Device,
) -> Result<(OnnxModel, String, ModelFile)> {
    let (file, name) = match path {
        Some(p) => {
            let name = p.display().to_string();
            let bytes = read_capped(p, MAX_MODEL_BYTES)?;
            let folder = ModelFolder::of(p).with_context(|| format!("cannot read `{name}`"))?;
            let file = ModelFile {
                bytes: bytes.into(),
                folder: Some(folder),
            };
            (file, name)
        }
        None => (
            ModelFile {
                bytes: assets::DEFAULT_MODEL.into(),
                folder: None,
            },
            assets::DEFAULT_MODEL_NAME.to_string(),
        ),
    };
    let model = OnnxModel::load(
        &file.bytes,
        file.external(),
        device,
        choice.output.as_deref(),
    );
    let model = model.with_context(|| format!("model `{name}`"))?;
    check_task(&model, &name, choice)?;
    if let Some(node) = model.batch_breaker() {
        eprintln!(
            "notice: `{name}` was exported with a fixed batch of 1 and node `{node}` does not follow the batch, so images and path points run one per forward (slower); export with a dynamic batch axis (`dynamic_axes={{\"input\": {{0: \"batch\"}}}}`, or `dynamic_shapes` with dynamo) to batch them"
        );
    } else if model.batch_reshapes() > 0 {
        eprintln!(
            "notice: `{name}` was exported with a fixed batch of 1; {} node(s) that bake it in (Reshape, Expand, Concat of a constant) now follow the input's batch so the path runs in batches",
            model.batch_reshapes()
        );
    }
    Ok((model, name, file))
}

/// Says what the model was taken for (a segmenter, or one output of several) and refuses a
/// model that is not what `--task` names.
fn check_task(model: &OnnxModel, name: &str, choice: &OutputArgs) -> Result<()> {
    let wanted = match choice.task {
        Task::Auto => None,
        Task::Classify => Some(igcam::task::Task::Classify),
        Task::Segment => Some(igcam::task::Task::Segment),
        Task::Detect => Some(igcam::task::Task::Detect),
    };
    let found = igcam::task::Task::expect(model, name, wanted)?;
    let (output, outputs) = model.outputs();
    if outputs.len() > 1 && choice.output.is_none() {
        let others: Vec<String> = outputs[1..].iter().map(|o| format!("`{o}`")).collect();
        eprintln!(
            "notice: `{name}` has several outputs; explaining the first, `{output}` (also: {}); --output NAME picks another",
            others.join(", ")
        );
    }
    if wanted.is_none() {
        let (_, why) = igcam::task::Task::of(model);
        match found {
            igcam::task::Task::Segment => eprintln!(
                "notice: `{name}` is a segmenter: {why}; each class is explained over its region (--task segment says so)"
            ),
            igcam::task::Task::Detect => eprintln!(
                "notice: `{name}` is a detector: {why}; each detection is explained at its anchor (--task detect says so)"
            ),
            igcam::task::Task::Classify => {}
        }
    }
    Ok(())
}

/// Creates `dir` and proves it is writable, before any long work starts.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot write to output folder `{}`: {e}; pass a writable --out DIR",
            dir.display()
        )
    };
    fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".igcam-write-test");
    fs::write(&probe, b"").map_err(fail)?;
    fs::remove_file(probe).map_err(fail)
}

/// Proves that `path` can be created (its folder exists and is writable), before long work.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".igcam-write-test-{}", std::process::id()));
    fs::write(&probe, b"")
        .and_then(|()| fs::remove_file(&probe))
        .with_context(|| format!("cannot write `{}`; pick a writable path", path.display()))
}

/// Writes bytes atomically (a temporary file in the same folder, then a rename), naming the
/// file in the error: a failed write leaves no partial file behind.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.igcam-tmp-{}", std::process::id()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write `{}`", path.display()))
}

/// Output file stems for a list of input images: the file stem, unless two inputs share it
/// (`cat.png` and `cat.jpg`, or `a/photo.png` and `b/photo.png`); then the clashing inputs
/// are told apart by their extension, then by their folders, so no result overwrites another.
pub struct OutputNames {
    /// One stem per input, in input order.
    pub stems: Vec<String>,
    /// One display name per input: the file name, or the path as given where names clash.
    pub display: Vec<String>,
}

impl OutputNames {
    /// Stems for `paths`.
    pub fn for_paths(paths: &[PathBuf]) -> Self {
        let file_stem = |p: &PathBuf| {
            p.file_stem()
                .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned())
        };
        let with_ext = |p: &PathBuf| match p.extension() {
            Some(e) => format!("{}_{}", file_stem(p), e.to_string_lossy()),
            None => file_stem(p),
        };
        let with_dirs = |p: &PathBuf| {
            let mut parts: Vec<String> = p
                .parent()
                .into_iter()
                .flat_map(|d| d.components())
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            parts.push(with_ext(p));
            parts.join("_")
        };
        let mut stems: Vec<String> = paths.iter().map(file_stem).collect();
        let mut display: Vec<String> = paths
            .iter()
            .map(|p| {
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        for rename in [&with_ext as &dyn Fn(&PathBuf) -> String, &with_dirs] {
            let clashing = Self::clashing(&stems);
            for &i in &clashing {
                stems[i] = rename(&paths[i]);
                display[i] = paths[i].display().to_string();
            }
        }
        // Still equal (the same file given twice): number them.
        for i in Self::clashing(&stems) {
            stems[i] = format!("{}_{}", stems[i], i + 1);
        }
        Self { stems, display }
    }

    /// Indices whose stem another input also has.
    fn clashing(stems: &[String]) -> Vec<usize> {
        (0..stems.len())
            .filter(|&i| stems.iter().filter(|s| **s == stems[i]).count() > 1)
            .collect()
    }

    /// Pairs of inputs that would have shared a stem (for a notice).
    pub fn clashes(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for i in 0..self.display.len() {
            for j in i + 1..self.display.len() {
                let name = |k: usize| {
                    Path::new(&self.display[k])
                        .file_stem()
                        .map(|s| s.to_os_string())
                };
                if name(i) == name(j) {
                    out.push((i, j));
                }
            }
        }
        out
    }
}

/// Writes a map as a 2-D float32 `.npy` file.
pub fn write_npy(path: &Path, map: &CamMap) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[map.height as u64, map.width as u64])
            .writer(&mut bytes)
            .begin_nd()?;
        writer.extend(map.values.iter().copied())?;
        writer.finish()?;
    }
    write(path, &bytes)
}

/// The image inputs: files, or the image files inside folders (sorted), in the order given.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(p)
                .with_context(|| format!("cannot list `{}`", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("folder `{}` holds no .png or .jpg images", p.display());
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The map part of a JSON record.
#[derive(Serialize)]
pub struct JsonCam<'a> {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Raw values before upsampling and normalising.
    pub values: &'a [f32],
}

/// The top-5 entries.
#[derive(Serialize)]
pub struct JsonClass<'a> {
    /// Class index.
    pub index: usize,
    /// Label.
    pub label: &'a str,
    /// Softmax probability.
    pub prob: f32,
}

impl<'a> From<&'a Prediction> for JsonClass<'a> {
    fn from(p: &'a Prediction) -> Self {
        Self {
            index: p.index,
            label: &p.label,
            prob: p.prob,
        }
    }
}

/// One object of the `--json` array: image x target x method.
#[derive(Serialize)]
pub struct JsonRecord<'a> {
    /// Image file name.
    pub image: String,
    /// Model name.
    pub model: &'a str,
    /// Explained layer (ONNX tensor name).
    pub layer: &'a str,
    /// Method label.
    pub method: String,
    /// Path steps used.
    pub steps: usize,
    /// Backend that ran, with the adapter or library: `cpu (Burn flex, 2 threads)`.
    pub backend: String,
    /// The explained class.
    pub target: Prediction,
    /// The five best classes.
    pub top5: Vec<JsonClass<'a>>,
    /// The raw map.
    pub cam: JsonCam<'a>,
    /// Overlay PNG path.
    pub overlay: String,
    /// Overlay PNG `[width, height]`: the photo's size (`--overlay full`) or the input size.
    pub overlay_size: [u32; 2],
    /// The region of the original photo the model saw (the centre crop), in its pixels.
    pub crop: igcam::metrics::PixelBox,
    /// Wall time of the explanation in milliseconds.
    pub ms: f64,
    /// The quadrature of an integrated map (Captum's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quadrature: Option<&'static str>,
    /// Pixel IG's convergence delta, `sum(cam) - (S_c(x) - S_c(baseline))` (Captum's
    /// `return_convergence_delta`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergence_delta: Option<f64>,
    /// A segmenter's target: the pixels of the explained region in the output plane (the
    /// class's own, where it scores highest, or `--region`'s), over which its scores are
    /// summed. `target.prob` is the class's own region's share of the plane and `target.logit`
    /// its mean score there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_pixels: Option<usize>,
    /// A detector's target: the explained detection (`target` is its class, with its
    /// confidence as `logit` and `prob`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<JsonDetection>,
}

/// A detection in the `--json` records.
#[derive(Serialize)]
pub struct JsonDetection {
    /// Its index among the image's detections (`detN`), the most confident first.
    pub index: usize,
    /// The anchor it was read from.
    pub anchor: usize,
    /// Its class.
    pub class: usize,
    /// The class's label.
    pub label: String,
    /// Its confidence.
    pub score: f32,
    /// Its box `[x0, y0, x1, y1]` in model-input pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The same box in the original photo's pixels.
    #[serde(rename = "box_in_photo")]
    pub bbox_in_photo: [f32; 4],
}
