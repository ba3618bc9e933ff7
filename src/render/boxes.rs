//! A detector's boxes drawn on an overlay.

use image::{Rgb, RgbImage};

/// Draws the outline of `bbox` (`[x0, y0, x1, y1]` in `img`'s pixels, clipped to it),
/// `thickness` pixels wide inwards, in `colour`.
pub fn draw_box(img: &mut RgbImage, bbox: [f32; 4], colour: [u8; 3], thickness: u32) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let clip = |v: f32, extent: f32| v.round().clamp(0.0, extent) as u32;
    let [x0, y0, x1, y1] = [
        clip(bbox[0], w),
        clip(bbox[1], h),
        clip(bbox[2], w),
        clip(bbox[3], h),
    ];
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + thickness
                || y < y0 + thickness
                || x + thickness >= x1
                || y + thickness >= y1;
            if edge {
                img.put_pixel(x, y, Rgb(colour));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_its_outline_clipped_to_the_image() {
        let mut img = RgbImage::new(10, 10);
        draw_box(&mut img, [2.0, 3.0, 6.0, 8.0], [0, 255, 0], 1);
        let green: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [0, 255, 0])
            .map(|(x, y, _)| (x, y))
            .collect();
        // A 4×5 rectangle's border: 2·4 + 2·3 pixels.
        assert_eq!(green.len(), 14, "{green:?}");
        assert!(green.contains(&(2, 3)) && green.contains(&(5, 7)) && !green.contains(&(3, 4)));
        // A box over the edge is clipped, not wrapped.
        let mut img = RgbImage::new(4, 4);
        draw_box(&mut img, [-5.0, -5.0, 2.0, 20.0], [9, 9, 9], 1);
        assert_eq!(img.get_pixel(1, 3).0, [9, 9, 9]);
        assert_eq!(img.get_pixel(3, 3).0, [0, 0, 0]);
    }
}
