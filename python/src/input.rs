//! The image handed to `explain`, as the Python side packed it: file bytes, RGB pixels, or an
//! input already normalised for the model.

use igcam::preprocess::{self, DecodeOptions};
use igcam::{Explainer, Prepared};
use image::{DynamicImage, RgbImage};
use pyo3::PyResult;

use crate::errors::input_error;

pub enum Input {
    /// PNG or JPEG bytes.
    Encoded(Vec<u8>),
    /// `uint8` pixels, `(H, W, 3)`.
    Rgb(RgbImage),
    /// `float32`, `(3, H, W)` at the model's input size.
    Normalised(Vec<f32>),
}

impl Input {
    /// `data` as `kind` (`encoded`, `rgb` or `normalised`) of `shape`.
    pub fn new(kind: &str, data: &[u8], shape: Vec<usize>) -> PyResult<Self> {
        let count: usize = shape.iter().product();
        if kind != "encoded" && count == 0 {
            return Err(input_error(format!("the image is empty (shape {shape:?})")));
        }
        match (kind, shape.as_slice()) {
            ("encoded", _) => Ok(Self::Encoded(data.to_vec())),
            ("rgb", &[h, w, 3]) if data.len() == count => {
                match (u32::try_from(w), u32::try_from(h)) {
                    (Ok(w), Ok(h)) => RgbImage::from_raw(w, h, data.to_vec())
                        .map(Self::Rgb)
                        .ok_or_else(|| input_error("the RGB image's bytes do not fill its shape")),
                    _ => Err(input_error("the RGB image is too large")),
                }
            }
            ("normalised", &[3, _, _]) if data.len() == 4 * count => Ok(Self::Normalised(
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            _ => Err(input_error(format!(
                "an image of kind `{kind}` cannot have shape {shape:?} and {} bytes",
                data.len()
            ))),
        }
    }

    /// Whether the image is a JPEG cut short.
    pub fn truncated_jpeg(&self) -> bool {
        matches!(self, Input::Encoded(bytes) if preprocess::jpeg_truncated(bytes))
    }

    /// Decodes (within `max_pixels`), fits and runs the image once.
    pub fn prepare(
        &self,
        explainer: &Explainer,
        max_pixels: u64,
        lenient: bool,
    ) -> igcam::Result<Prepared> {
        match self {
            Input::Encoded(bytes) => {
                let options = DecodeOptions {
                    max_pixels,
                    lenient,
                };
                explainer.prepare(&preprocess::decode_with(bytes, options)?)
            }
            Input::Rgb(rgb) => explainer.prepare(&DynamicImage::ImageRgb8(rgb.clone())),
            Input::Normalised(chw) => explainer.prepare_normalised(chw.clone()),
        }
    }
}
