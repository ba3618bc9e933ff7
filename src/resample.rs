//! Bilinear resizing exactly as Pillow's `Image.resize(..., BILINEAR)` computes it, which is what
//! torchvision's `Resize` does to a PIL image: a separable triangle filter widened by the
//! downscale factor (antialiased), coefficients in 22-bit fixed point, the horizontal pass
//! first, rounded to 8 bits between the passes. Hand-written rather than taken from an image
//! crate because the point is Pillow's exact integer arithmetic: the `image` crate's float
//! filter differs by a grey level here and there, enough to move logits by a few percent.
//! Checked pixel for pixel against torchvision in `tests/preprocess_torchvision.rs`.

use image::RgbImage;

/// Bits of fraction in the fixed-point coefficients (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output pixel along one axis: the first input pixel, how many are read, and their
/// fixed-point weights (`ksize` per output pixel).
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the bilinear filter, resizing
/// `in_size` pixels to `out_size`.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle filter's support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let t = ((x + xmin) as f64 - center + 0.5) / filter_scale;
            *kx = (1.0 - t.abs()).max(0.0);
            total += *kx;
        }
        for (x, &kx) in k.iter().enumerate().take(n) {
            let w = if total != 0.0 { kx / total } else { kx };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

/// Pillow's `clip8`: a fixed-point sum (with its rounding half already added) to a byte.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `image` to `width` × `height` like Pillow's bilinear `resize`.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let src = image.as_raw();
    let half = 1i64 << (PRECISION_BITS - 1);
    let vertical = coefficients(in_h, out_h);
    // Only the rows the vertical pass reads go through the horizontal one.
    let first_row = vertical.bounds.first().map_or(0, |b| b.0);
    let last_row = vertical.bounds.last().map_or(0, |b| b.0 + b.1);
    let rows = last_row.saturating_sub(first_row);
    let (temp, temp_w) = if out_w != in_w {
        let c = coefficients(in_w, out_w);
        let mut temp = vec![0u8; rows * out_w * 3];
        for y in 0..rows {
            let row = &src[(first_row + y) * in_w * 3..][..in_w * 3];
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.weights[xx * c.ksize..][..n];
                let mut sums = [half; 3];
                for (x, &w) in k.iter().enumerate() {
                    let p = &row[(xmin + x) * 3..][..3];
                    for (s, &v) in sums.iter_mut().zip(p) {
                        *s += i64::from(v) * i64::from(w);
                    }
                }
                let out = &mut temp[(y * out_w + xx) * 3..][..3];
                for (o, s) in out.iter_mut().zip(sums) {
                    *o = clip8(s);
                }
            }
        }
        (temp, out_w)
    } else {
        (
            src[first_row * in_w * 3..last_row * in_w * 3].to_vec(),
            in_w,
        )
    };
    if out_h == in_h {
        return RgbImage::from_raw(width, height, temp).expect("buffer matches the size");
    }
    let mut out = vec![0u8; out_h * out_w * 3];
    for (yy, &(ymin, n)) in vertical.bounds.iter().enumerate() {
        let k = &vertical.weights[yy * vertical.ksize..][..n];
        let row0 = ymin - first_row;
        for xx in 0..temp_w {
            let mut sums = [half; 3];
            for (y, &w) in k.iter().enumerate() {
                let p = &temp[((row0 + y) * temp_w + xx) * 3..][..3];
                for (s, &v) in sums.iter_mut().zip(p) {
                    *s += i64::from(v) * i64::from(w);
                }
            }
            let o = &mut out[(yy * out_w + xx) * 3..][..3];
            for (o, s) in o.iter_mut().zip(sums) {
                *o = clip8(s);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer matches the size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_identity_is_exact() {
        let c = coefficients(451, 384);
        for (xx, &(_, n)) in c.bounds.iter().enumerate() {
            let sum: i64 = c.weights[xx * c.ksize..][..n]
                .iter()
                .map(|&w| i64::from(w))
                .sum();
            assert!(
                (sum - (1 << PRECISION_BITS)).abs() <= n as i64,
                "{xx}: {sum}"
            );
        }
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 200]));
        assert_eq!(resize_bilinear(&img, 7, 5), img);
        // Halving averages pixel pairs (with the triangle widened to 2 pixels).
        let row = RgbImage::from_fn(4, 1, |x, _| image::Rgb([[0, 100, 200, 200][x as usize]; 3]));
        let half = resize_bilinear(&row, 2, 1);
        assert_eq!(half.get_pixel(0, 0).0[0], 71);
        assert_eq!(half.get_pixel(1, 0).0[0], 186);
    }
}
