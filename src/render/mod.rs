//! Heatmap post-processing: upsample the layer-resolution map to the image, normalise for
//! display, colour it and blend it over the photo.

mod blend;
mod boxes;
mod colormap;
mod full;
mod region;
mod upsample;

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

pub use blend::{heatmap, overlay};
pub use boxes::draw_box;
pub use colormap::Colormap;
pub use full::overlay_region;
pub use region::outline_mask;
pub use upsample::{Upsampling, normalise_min_max, upsample_bilinear, upsample_bilinear_add};

use crate::error::{Error, Result};

/// Encodes an RGB image as PNG bytes.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| Error::Image(e.to_string().into()))?;
    Ok(out.into_inner())
}
