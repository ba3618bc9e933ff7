//! Image bytes to a normalised NCHW tensor: decode (with size limits), resize/centre-crop
//! exactly like torchvision's `Resize(256) + CenterCrop(224)` on a PIL image (Pillow's bilinear
//! resampling, see [`resample`](crate::resample)), and normalise with a preset.

use std::io::Cursor;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops;
use image::{DynamicImage, ImageReader, Limits, RgbImage};

use crate::error::{Error, Message, Result, Setting};

/// Largest accepted width or height of an input image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// How pixels are mapped to the model's input range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
            _ => Err(Error::InvalidOption(Message::from(format!(
                "unknown preprocessing `{s}` (imagenet, raw01, caffe)"
            )))),
        }
    }

    /// Normalised value of channel `c` (model order) for an RGB pixel.
    fn normalise(self, rgb: [u8; 3], c: usize) -> f32 {
        match self {
            Self::Imagenet => (f32::from(rgb[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c],
            Self::Raw01 => f32::from(rgb[c]) / 255.0,
            Self::Caffe => f32::from(rgb[2 - c]) - CAFFE_BGR_MEAN[c],
        }
    }

    /// The inverse of [`Preset::normalise`]: channel `c`'s value (model order) back in 0..=255
    /// (unrounded, unclamped), and the RGB channel it belongs to.
    fn denormalise(self, v: f32, c: usize) -> (f32, usize) {
        match self {
            Self::Imagenet => ((v * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0, c),
            Self::Raw01 => (v * 255.0, c),
            Self::Caffe => (v + CAFFE_BGR_MEAN[c], 2 - c),
        }
    }
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
const CAFFE_BGR_MEAN: [f32; 3] = [103.939, 116.779, 123.68];

/// The path's starting point for integrated methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
            _ => Err(Error::InvalidOption(Message::from(format!(
                "unknown baseline `{s}` (black, zero)"
            )))),
        }
    }
}

/// What [`decode_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest `width * height` accepted (see [`crate::budget::DEFAULT_MAX_PIXELS`]).
    pub max_pixels: u64,
    /// Explain a truncated JPEG (its missing part decodes grey) instead of refusing it.
    pub lenient: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: crate::budget::DEFAULT_MAX_PIXELS,
            lenient: false,
        }
    }
}

/// Decodes PNG or JPEG bytes with the default [`DecodeOptions`].
pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    decode_with(bytes, DecodeOptions::default())
}

/// Whether JPEG bytes lack the end-of-image marker (the file was cut short, and the decoder
/// would fill the missing rows with grey). Trailing padding after the marker is allowed.
pub fn jpeg_truncated(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0 && !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    bytes.starts_with(&[0xFF, 0xD8]) && !bytes[..end].ends_with(&[0xFF, 0xD9])
}

/// Decodes PNG or JPEG bytes, refusing absurd dimensions before allocating and, unless
/// `lenient`, truncated JPEGs.
pub fn decode_with(bytes: &[u8], options: DecodeOptions) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::Image("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string().into()))?;
    let Some(format) = reader.format() else {
        return Err(Error::Image("not a PNG or JPEG file".into()));
    };
    if format == image::ImageFormat::Jpeg && !options.lenient && jpeg_truncated(bytes) {
        return Err(Error::Image(
            Message::from(
                "the JPEG is truncated (no end-of-image marker), so part of the picture is missing; download it again, or ",
            )
            .set(Setting::Lenient)
            .text(" to explain it anyway"),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let too_large = || {
        Error::Image(Message::from(format!(
            "the image is larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels or needs too much memory; resize it first"
        )))
    };
    let first_line = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => too_large(),
        e => Error::Image(Message::from(
            e.to_string().lines().next().unwrap_or_default(),
        )),
    };
    let decoder = reader.into_decoder().map_err(first_line)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let pixels = u64::from(w) * u64::from(h);
    if pixels > options.max_pixels {
        return Err(Error::Budget {
            what: format!("image {w}x{h}"),
            msg: Message::from(format!(
                "{pixels} pixels, over the limit of {} (",
                options.max_pixels
            ))
            .then(Setting::MaxPixels)
            .text("); resize it first"),
        });
    }
    DynamicImage::from_decoder(decoder).map_err(first_line)
}

/// Where the pixels of the source image land in the model input: resize to `resized`, then
/// crop `size` starting at `offset` (all `[x, y]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Source image `[width, height]`.
    pub source: [u32; 2],
    /// Size after resizing, `[width, height]`.
    pub resized: [u32; 2],
    /// Top-left corner of the crop in the resized image, `[x, y]`.
    pub offset: [u32; 2],
    /// Model input `[width, height]`.
    pub size: [u32; 2],
}

impl Geometry {
    /// The transform [`fit`] applies to an image of `source` `[width, height]`: unchanged when it
    /// already has the input size; otherwise resize the shorter side to `256/224` of the input
    /// size and centre-crop (or, with `crop = false`, resize the whole image).
    pub fn new(source: [u32; 2], size: [usize; 2], crop: bool) -> Self {
        let (w, h) = (size[1] as u32, size[0] as u32);
        let [iw, ih] = source;
        let resized = if [iw, ih] == [w, h] || !crop {
            [w, h]
        } else {
            // torchvision's `Resize(short)`: the shorter side becomes `short`, the other
            // `int(short * other / shorter)` (truncated).
            let short = (f64::from(h.min(w)) * 256.0 / 224.0).round();
            let shorter = f64::from(iw.min(ih));
            let side = |v: u32| {
                if v == iw.min(ih) {
                    short as u32
                } else {
                    (short * f64::from(v) / shorter) as u32
                }
            };
            [side(iw).max(w), side(ih).max(h)]
        };
        // torchvision's `CenterCrop`: `int(round((size - crop) / 2))`, Python rounding half to
        // even.
        let offset =
            [0, 1].map(|a| (f64::from(resized[a] - [w, h][a]) / 2.0).round_ties_even() as u32);
        Self {
            source,
            resized,
            offset,
            size: [w, h],
        }
    }

    /// Refuses a resize that would make more than `max_pixels` pixels (a 1x16384 strip whose
    /// short side goes to 256 would be 256x4194304).
    pub fn check(&self, max_pixels: u64) -> Result<()> {
        let pixels = u64::from(self.resized[0]) * u64::from(self.resized[1]);
        if pixels <= max_pixels {
            return Ok(());
        }
        Err(Error::Budget {
            what: format!("image {}x{}", self.source[0], self.source[1]),
            msg: Message::from(format!(
                "resizing its shorter side for the centre crop makes it {}x{} ({pixels} pixels), over the limit of {max_pixels} (",
                self.resized[0], self.resized[1]
            ))
            .then(Setting::MaxPixels)
            .text("); crop it to a less extreme aspect ratio, or ")
            .set(Setting::NoCrop),
        })
    }

    /// The part of the source image the model sees (the crop), in source pixels (0-based, end
    /// exclusive): the whole image when nothing was cropped.
    pub fn crop_box(&self) -> crate::metrics::PixelBox {
        let back = |v: u32, axis: usize| {
            let scale = f64::from(self.source[axis]) / f64::from(self.resized[axis]);
            ((f64::from(v) * scale).round() as usize).min(self.source[axis] as usize)
        };
        crate::metrics::PixelBox {
            x0: back(self.offset[0], 0),
            y0: back(self.offset[1], 1),
            x1: back(self.offset[0] + self.size[0], 0),
            y1: back(self.offset[1] + self.size[1], 1),
        }
    }

    /// Maps a source-pixel box (0-based, end exclusive) into the model input, clipped to it.
    pub fn map_box(&self, b: crate::metrics::PixelBox) -> crate::metrics::PixelBox {
        let sx = f64::from(self.resized[0]) / f64::from(self.source[0]);
        let sy = f64::from(self.resized[1]) / f64::from(self.source[1]);
        let x = |v: usize| {
            ((v as f64 * sx).round() as i64 - i64::from(self.offset[0]))
                .clamp(0, i64::from(self.size[0])) as usize
        };
        let y = |v: usize| {
            ((v as f64 * sy).round() as i64 - i64::from(self.offset[1]))
                .clamp(0, i64::from(self.size[1])) as usize
        };
        crate::metrics::PixelBox {
            x0: x(b.x0),
            y0: y(b.y0),
            x1: x(b.x1),
            y1: y(b.y1),
        }
    }

    /// Maps a box in model-input pixels (`[x0, y0, x1, y1]`, a detector's) back to source
    /// pixels: the crop undone, then the resize.
    pub fn unmap_box(&self, b: [f32; 4]) -> [f32; 4] {
        let back = |v: f32, axis: usize| {
            (v + self.offset[axis] as f32) * self.source[axis] as f32 / self.resized[axis] as f32
        };
        [back(b[0], 0), back(b[1], 1), back(b[2], 0), back(b[3], 1)]
    }

    /// A mask of the source image (`mask_size` `[width, height]`, row-major; any resolution,
    /// usually the source's) at the model input (`size`, row-major): each input pixel takes
    /// the mask pixel under its centre after undoing the resize and the crop.
    pub fn map_mask(&self, mask: &[bool], mask_size: [usize; 2]) -> Vec<bool> {
        let [mw, mh] = mask_size;
        let [w, h] = [self.size[0] as usize, self.size[1] as usize];
        let source = |v: usize, offset: u32, resized: u32, extent: usize| {
            let at = (v as f64 + f64::from(offset) + 0.5) / f64::from(resized) * extent as f64;
            (at.floor().max(0.0) as usize).min(extent.saturating_sub(1))
        };
        let cols: Vec<usize> = (0..w)
            .map(|x| source(x, self.offset[0], self.resized[0], mw))
            .collect();
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            let row = source(y, self.offset[1], self.resized[1], mh) * mw;
            out.extend(
                cols.iter()
                    .map(|&c| mask.get(row + c).copied().unwrap_or(false)),
            );
        }
        out
    }
}

/// Brings an image to the model's `[height, width]` as described by [`Geometry::new`].
pub fn fit(image: &DynamicImage, size: [usize; 2], crop: bool) -> RgbImage {
    let rgb = image.to_rgb8();
    let g = Geometry::new([rgb.width(), rgb.height()], size, crop);
    if g.resized == [rgb.width(), rgb.height()] && g.offset == [0, 0] {
        return rgb;
    }
    let resized = crate::resample::resize_bilinear(&rgb, g.resized[0], g.resized[1]);
    imageops::crop_imm(&resized, g.offset[0], g.offset[1], g.size[0], g.size[1]).to_image()
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

/// The RGB photo that normalised CHW floats (3 channels, `size` = `[height, width]`) stand
/// for: each value put back through `preset`'s inverse, rounded and clamped to 0..=255. For
/// showing an input that came as floats.
pub fn denormalise(chw: &[f32], preset: Preset, size: [usize; 2]) -> RgbImage {
    let plane = size[0] * size[1];
    let mut photo = RgbImage::new(size[1] as u32, size[0] as u32);
    for (i, p) in photo.pixels_mut().enumerate() {
        for c in 0..3 {
            let (v, rgb) = preset.denormalise(chw[c * plane + i], c);
            p.0[rgb] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    photo
}

/// The baseline image in normalised CHW floats.
pub fn baseline(kind: Baseline, preset: Preset, size: [usize; 2]) -> Vec<f32> {
    match kind {
        Baseline::Zero => vec![0.0; 3 * size[0] * size[1]],
        Baseline::Black => normalise(&RgbImage::new(size[1] as u32, size[0] as u32), preset),
    }
}

/// Wraps normalised CHW floats as a `[1, 3, H, W]` tensor on `device`.
pub fn image_tensor(chw: Vec<f32>, size: [usize; 2], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(chw, [1, 3, size[0], size[1]]), device)
}

/// The normalised image and its path baseline as `[1, 3, H, W]` tensors, for a photo already
/// at the model's input size.
pub fn input_pair(
    photo: &RgbImage,
    preset: Preset,
    baseline: Baseline,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let size = [photo.height() as usize, photo.width() as usize];
    let x = image_tensor(normalise(photo, preset), size, device);
    let b = image_tensor(self::baseline(baseline, preset, size), size, device);
    (x, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PixelBox;

    #[test]
    fn denormalise_inverts_every_preset() {
        let photo = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 120, 255]));
        for preset in [Preset::Imagenet, Preset::Raw01, Preset::Caffe] {
            let chw = normalise(&photo, preset);
            assert_eq!(denormalise(&chw, preset, [3, 5]), photo, "{preset:?}");
        }
        // Out-of-range floats are clamped.
        let black = denormalise(&[-100.0; 3], Preset::Raw01, [1, 1]);
        assert_eq!(black.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn a_detectors_box_maps_back_to_the_source_photo() {
        // 448x300: shorter side to 256 (382x256), centre crop 224: undo the crop's offset,
        // then the scale.
        let g = Geometry::new([448, 300], [224, 224], true);
        assert_eq!((g.resized, g.offset), ([382, 256], [79, 16]));
        let b = g.unmap_box([0.0, 0.0, 224.0, 224.0]);
        let (sx, sy) = (448.0 / 382.0, 300.0 / 256.0);
        let want = [79.0 * sx, 16.0 * sy, 303.0 * sx, 240.0 * sy];
        for (got, want) in b.iter().zip(want) {
            assert!((got - want).abs() < 1e-3, "{b:?} vs {want:?}");
        }
        // Without a crop only the scale is undone.
        let whole = Geometry::new([448, 300], [224, 224], false);
        assert_eq!(
            whole.unmap_box([112.0, 112.0, 224.0, 224.0]),
            [224.0, 150.0, 448.0, 300.0]
        );
    }

    #[test]
    fn geometry_matches_resize_256_centre_crop_224() {
        // 451x300 (Chelsea): shorter side 300 -> 256, width int(256 * 451 / 300) = 384 (as
        // torchvision truncates), crop x from 80.
        let g = Geometry::new([451, 300], [224, 224], true);
        assert_eq!(g.resized, [384, 256]);
        assert_eq!(g.offset, [80, 16]);
        // An odd margin rounds half to even, like Python's round: 161 / 2 -> 80, 163 / 2 -> 82.
        assert_eq!(Geometry::new([385, 256], [224, 224], true).offset, [80, 16]);
        assert_eq!(Geometry::new([387, 256], [224, 224], true).offset, [82, 16]);
        let b = g.map_box(PixelBox {
            x0: 100,
            y0: 0,
            x1: 300,
            y1: 300,
        });
        assert_eq!(
            b,
            PixelBox {
                x0: 5,
                y0: 0,
                x1: 175,
                y1: 224
            }
        );
        // The crop in source pixels: x 80..304 of 384 -> 94..357 of 451, y 16..240 of 256 ->
        // 19..281 of 300.
        assert_eq!(
            g.crop_box(),
            PixelBox {
                x0: 94,
                y0: 19,
                x1: 357,
                y1: 281
            }
        );
        assert_eq!(
            Geometry::new([224, 224], [224, 224], true).resized,
            [224, 224]
        );
        let whole = Geometry::new([500, 100], [224, 224], false).crop_box();
        assert_eq!([whole.x0, whole.y0, whole.x1, whole.y1], [0, 0, 500, 100]);
        assert_eq!(
            Geometry::new([500, 100], [224, 224], false).resized,
            [224, 224]
        );
    }
}
