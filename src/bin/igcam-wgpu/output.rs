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

use crate::assets;

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// Loads `path`, or the embedded model when `None`; returns it with its display name.
pub fn load_model(path: Option<&Path>, device: &Device) -> Result<(OnnxModel, String)> {
    let (bytes, name) = match path {
        Some(p) => (read(p)?, p.display().to_string()),
        None => (
            assets::DEFAULT_MODEL.to_vec(),
            assets::DEFAULT_MODEL_NAME.to_string(),
        ),
    };
    let model = OnnxModel::from_bytes(&bytes, device).with_context(|| format!("model `{name}`"))?;
    Ok((model, name))
}

/// `--batch` or its default: 10 path steps per chunk at 224x224, scaled by the input area.
pub fn default_batch(model: &OnnxModel, batch: Option<usize>) -> usize {
    let [h, w] = model.input_size();
    batch.unwrap_or_else(|| (10 * 224 * 224 / (h * w)).clamp(1, 64))
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

/// Writes bytes, naming the file in the error.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
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
    /// Backend that ran.
    pub backend: &'a str,
    /// The explained class.
    pub target: Prediction,
    /// The five best classes.
    pub top5: Vec<JsonClass<'a>>,
    /// The raw map.
    pub cam: JsonCam<'a>,
    /// Overlay PNG path.
    pub overlay: String,
    /// Wall time of the explanation in milliseconds.
    pub ms: f64,
}
