//! Colouring a map and blending it over the photo.

use image::RgbImage;

use super::colormap::Colormap;
use super::upsample::normalise_min_max;
use crate::cam::CamMap;

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
pub fn blend(photo: [u8; 3], heat: [u8; 3], a: f32) -> [u8; 3] {
    std::array::from_fn(|c| {
        (f32::from(photo[c]) * (1.0 - a) + f32::from(heat[c]) * a).round() as u8
    })
}
