//! Image bytes to a normalised NCHW tensor: decode (with size limits), resize/centre-crop like
//! torchvision's `Resize + CenterCrop`, and normalise with a preset.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest accepted width or height of an input image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// How pixels are mapped to the model's input range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// RGB / 255, then ImageNet mean and standard deviation (torchvision models).
    #[default]
    Imagenet,
    /// RGB / 255, nothing else.
    Raw01,
    /// BGR in 0..255 minus the Caffe ImageNet mean (TorchRay's VOC models).
    Caffe,
}

impl Preset {
    /// Parses `imagenet`, `raw01` or `caffe`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "imagenet" => Ok(Self::Imagenet),
            "raw01" => Ok(Self::Raw01),
            "caffe" => Ok(Self::Caffe),
            _ => Err(Error::InvalidOption(format!(
                "unknown preprocessing `{s}` (imagenet, raw01, caffe)"
            ))),
        }
    }

    /// Normalised value of channel `c` (model order) for an RGB pixel.
    fn normalise(self, rgb: [u8; 3], c: usize) -> f32 {
        const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
        const STD: [f32; 3] = [0.229, 0.224, 0.225];
        const CAFFE_BGR_MEAN: [f32; 3] = [103.939, 116.779, 123.68];
        match self {
            Self::Imagenet => (f32::from(rgb[c]) / 255.0 - MEAN[c]) / STD[c],
            Self::Raw01 => f32::from(rgb[c]) / 255.0,
            Self::Caffe => f32::from(rgb[2 - c]) - CAFFE_BGR_MEAN[c],
        }
    }
}

/// The path's starting point for integrated methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// A black image put through the same normalisation (the paper's choice).
    #[default]
    Black,
    /// All zeros in normalised space.
    Zero,
}

impl Baseline {
    /// Parses `black` or `zero`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "black" => Ok(Self::Black),
            "zero" => Ok(Self::Zero),
            _ => Err(Error::InvalidOption(format!(
                "unknown baseline `{s}` (black, zero)"
            ))),
        }
    }
}

/// Decodes PNG or JPEG bytes, refusing absurd dimensions before allocating.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::Image("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::Image("not a PNG or JPEG file".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::Image(format!(
            "the image is larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels or needs too much memory; resize it first"
        )),
        e => Error::Image(e.to_string().lines().next().unwrap_or_default().to_string()),
    })
}

/// Brings an image to the model's `[height, width]`: unchanged when it already has that size;
/// otherwise resize the shorter side to `256/224` of the input size and centre-crop (or, with
/// `crop = false`, resize the whole image).
pub fn fit(image: &DynamicImage, size: [usize; 2], crop: bool) -> RgbImage {
    let rgb = image.to_rgb8();
    let (h, w) = (size[0] as u32, size[1] as u32);
    if rgb.dimensions() == (w, h) {
        return rgb;
    }
    if !crop {
        return imageops::resize(&rgb, w, h, FilterType::Triangle);
    }
    let (iw, ih) = rgb.dimensions();
    let short = (h.min(w) as f64 * 256.0 / 224.0).round();
    let scale = short / f64::from(iw.min(ih));
    let (rw, rh) = (
        ((f64::from(iw) * scale).round() as u32).max(w),
        ((f64::from(ih) * scale).round() as u32).max(h),
    );
    let resized = imageops::resize(&rgb, rw, rh, FilterType::Triangle);
    let (left, top) = ((rw - w) / 2, (rh - h) / 2);
    imageops::crop_imm(&resized, left, top, w, h).to_image()
}

/// Normalises an RGB image into CHW floats (3 channels).
pub fn normalise(rgb: &RgbImage, preset: Preset) -> Vec<f32> {
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = preset.normalise(p.0, c);
        }
    }
    out
}

/// The baseline image in normalised CHW floats.
pub fn baseline(kind: Baseline, preset: Preset, size: [usize; 2]) -> Vec<f32> {
    match kind {
        Baseline::Zero => vec![0.0; 3 * size[0] * size[1]],
        Baseline::Black => normalise(&RgbImage::new(size[1] as u32, size[0] as u32), preset),
    }
}
