//! The overlay on the whole original photo: the map covers the region the model saw (the
//! centre crop), which is outlined; the rest of the photo stays as it was.

use image::{Rgb, RgbImage};

use super::blend::{blend, heatmap};
use super::colormap::Colormap;
use super::upsample::upsample_bilinear;
use crate::cam::CamMap;
use crate::metrics::PixelBox;

/// Blends `map` (any resolution), coloured with `colormap` at weight `alpha`, over `region` of
/// `photo` (source pixels, end exclusive) and outlines the region when it is not the whole
/// photo. The result has the photo's size.
pub fn overlay_region(
    photo: &RgbImage,
    map: &CamMap,
    region: PixelBox,
    colormap: Colormap,
    alpha: f32,
) -> RgbImage {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let (x0, y0) = (region.x0.min(w), region.y0.min(h));
    let (x1, y1) = (region.x1.clamp(x0, w), region.y1.clamp(y0, h));
    let mut out = photo.clone();
    if x1 == x0 || y1 == y0 {
        return out;
    }
    let heat = heatmap(&upsample_bilinear(map, y1 - y0, x1 - x0), colormap);
    let a = alpha.clamp(0.0, 1.0);
    for (x, y, px) in heat.enumerate_pixels() {
        let (sx, sy) = (x0 as u32 + x, y0 as u32 + y);
        let blended = blend(out.get_pixel(sx, sy).0, px.0, a);
        out.put_pixel(sx, sy, Rgb(blended));
    }
    if [x0, y0, x1, y1] != [0, 0, w, h] {
        outline(&mut out, [x0, y0, x1, y1], (w.min(h) / 250).max(1));
    }
    out
}

/// Draws a white frame of `thickness` pixels just inside `[x0, y0, x1, y1]`.
fn outline(img: &mut RgbImage, [x0, y0, x1, y1]: [usize; 4], thickness: usize) {
    let t = thickness.min((x1 - x0) / 2).min((y1 - y0) / 2).max(1);
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + t || x >= x1 - t || y < y0 + t || y >= y1 - t;
            if edge {
                img.put_pixel(x as u32, y as u32, Rgb([255, 255, 255]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_covers_the_region_only_and_the_region_is_framed() {
        let photo = RgbImage::from_pixel(10, 8, Rgb([0, 0, 0]));
        let map = CamMap {
            height: 1,
            width: 2,
            values: vec![0.0, 1.0],
        };
        let region = PixelBox {
            x0: 2,
            y0: 1,
            x1: 8,
            y1: 7,
        };
        let out = overlay_region(&photo, &map, region, Colormap::Greys, 1.0);
        assert_eq!(out.dimensions(), (10, 8));
        // Outside the region: the photo unchanged.
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(9, 7).0, [0, 0, 0]);
        // The frame, one pixel inside the region's edge.
        assert_eq!(out.get_pixel(2, 3).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(5, 1).0, [255, 255, 255]);
        // Inside: the heatmap, dark on the left (low), bright on the right (high).
        let (left, right) = (out.get_pixel(3, 3).0[0], out.get_pixel(6, 3).0[0]);
        assert_eq!(left, Colormap::Greys.rgb(0.0)[0]);
        assert!(right > left, "{left} {right}");
    }

    #[test]
    fn whole_photo_region_has_no_frame() {
        let photo = RgbImage::from_pixel(4, 4, Rgb([10, 10, 10]));
        let map = CamMap {
            height: 1,
            width: 1,
            values: vec![0.5],
        };
        let region = PixelBox {
            x0: 0,
            y0: 0,
            x1: 4,
            y1: 4,
        };
        let out = overlay_region(&photo, &map, region, Colormap::Turbo, 0.0);
        assert_eq!(out, photo);
    }
}
