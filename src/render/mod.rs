//! Heatmap post-processing: upsample the layer-resolution map to the image, normalise for
//! display, colour it and blend it over the photo.

mod colormap;
mod full;
mod upsample;

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

pub use colormap::Colormap;
pub use full::overlay_region;
pub use upsample::{normalise_min_max, upsample_bilinear};

use crate::cam::CamMap;
use crate::error::{Error, Result};

/// A map already at display size, coloured with `colormap` after min-max normalisation.
pub fn heatmap(map: &CamMap, colormap: Colormap) -> RgbImage {
    let norm = normalise_min_max(&map.values);
    RgbImage::from_fn(map.width as u32, map.height as u32, |x, y| {
        image::Rgb(colormap.rgb(norm[y as usize * map.width + x as usize]))
    })
}

/// Blends `heat` over `photo` (same size) with weight `alpha` for the heatmap.
pub fn overlay(photo: &RgbImage, heat: &RgbImage, alpha: f32) -> RgbImage {
    let a = alpha.clamp(0.0, 1.0);
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        image::Rgb(blend(photo.get_pixel(x, y).0, heat.get_pixel(x, y).0, a))
    })
}

/// One pixel of `heat` over `photo` with weight `a` (in 0..=1) for the heat.
fn blend(photo: [u8; 3], heat: [u8; 3], a: f32) -> [u8; 3] {
    std::array::from_fn(|c| {
        (f32::from(photo[c]) * (1.0 - a) + f32::from(heat[c]) * a).round() as u8
    })
}

/// Encodes an RGB image as PNG bytes.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| Error::Image(e.to_string().into()))?;
    Ok(out.into_inner())
}
