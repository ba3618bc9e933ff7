//! A segmenter's class region outlined on an overlay.

use image::{Rgb, RgbImage};

use crate::cam::CamMap;
use crate::metrics::PixelBox;

/// Draws the boundary of `mask` (the output plane's pixels, non-zero inside the region),
/// stretched over `area` of `img` (nearest pixel), in white: every pixel of the region with a
/// 4-neighbour outside it (or at the area's edge).
pub fn outline_mask(img: &mut RgbImage, mask: &CamMap, area: PixelBox) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (x0, y0) = (area.x0.min(w), area.y0.min(h));
    let (x1, y1) = (area.x1.clamp(x0, w), area.y1.clamp(y0, h));
    let (aw, ah) = (x1 - x0, y1 - y0);
    if aw == 0 || ah == 0 || mask.width == 0 || mask.height == 0 {
        return;
    }
    // Whether area pixel (x, y) falls in the region (nearest mask pixel).
    let inside = |x: usize, y: usize| {
        let mx = (x * mask.width / aw).min(mask.width - 1);
        let my = (y * mask.height / ah).min(mask.height - 1);
        mask.values[my * mask.width + mx] != 0.0
    };
    for y in 0..ah {
        for x in 0..aw {
            let edge = inside(x, y)
                && (x == 0
                    || y == 0
                    || x + 1 == aw
                    || y + 1 == ah
                    || !inside(x - 1, y)
                    || !inside(x + 1, y)
                    || !inside(x, y - 1)
                    || !inside(x, y + 1));
            if edge {
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, Rgb([255, 255, 255]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_is_the_regions_boundary_stretched_over_the_area() {
        // A 2×2 region in the middle of a 4×4 mask, drawn over an 8×8 area at (1, 1).
        let mut values = vec![0.0; 16];
        for i in [5, 6, 9, 10] {
            values[i] = 1.0;
        }
        let mask = CamMap {
            height: 4,
            width: 4,
            values,
        };
        let mut img = RgbImage::new(10, 10);
        let area = PixelBox {
            x0: 1,
            y0: 1,
            x1: 9,
            y1: 9,
        };
        outline_mask(&mut img, &mask, area);
        let white: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [255, 255, 255])
            .map(|(x, y, _)| (x, y))
            .collect();
        // The region covers area pixels 2..6 in each axis (image 3..7): its 12 border pixels.
        assert_eq!(white.len(), 12, "{white:?}");
        assert!(
            white
                .iter()
                .all(|&(x, y)| (3..7).contains(&x) && (3..7).contains(&y))
        );
        assert!(!white.contains(&(4, 4)) && white.contains(&(3, 4)));
    }
}
