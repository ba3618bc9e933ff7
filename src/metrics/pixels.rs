//! Boxes, masks and pixel rankings: what every metric works on.

/// A pixel box, 0-based, `x1`/`y1` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PixelBox {
    /// Left column.
    pub x0: usize,
    /// Top row.
    pub y0: usize,
    /// One past the right column.
    pub x1: usize,
    /// One past the bottom row.
    pub y1: usize,
}

/// The union of `boxes` as an `height * width` mask.
pub fn boxes_mask(boxes: &[PixelBox], height: usize, width: usize) -> Vec<bool> {
    let mut mask = vec![false; height * width];
    for b in boxes {
        for y in b.y0.min(height)..b.y1.min(height) {
            for x in b.x0.min(width)..b.x1.min(width) {
                mask[y * width + x] = true;
            }
        }
    }
    mask
}

/// Pixel indices sorted by decreasing map value; ties keep the lower index first.
pub fn ranked_pixels(map: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..map.len()).collect();
    order.sort_by(|&a, &b| map[b].total_cmp(&map[a]).then(a.cmp(&b)));
    order
}
