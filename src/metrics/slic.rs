//! SLIC superpixels (Achanta et al., 2012) exactly as scikit-image 0.26's `slic` computes them
//! with the defaults Quantus's IROF calls it with (`slic(image, start_label=0)`): the image
//! min-max scaled over all its values, converted to CIE Lab (D65, 2°), scaled by
//! 1/compactness (10); seeds on skimage's `regular_grid` for 100 segments; 10 rounds of local
//! k-means (each pixel to the nearest seed within two grid steps, by Lab distance plus
//! spatial distance over the step squared; ties keep the earlier seed); then connectivity
//! enforced (a breadth-first search relabels each 4-connected piece; pieces under half the
//! mean segment size join the last neighbour met). The image is given as the model sees it
//! (normalised, CHW), as Quantus hands it over.

/// skimage's defaults.
const COMPACTNESS: f64 = 10.0;
const ROUNDS: usize = 10;

/// skimage's `regular_grid` over `(1, height, width)` for `points` seeds: the first seed and
/// the step along y and x (its search for steps that fit the axes, sorted by length).
fn regular_grid([height, width]: [usize; 2], points: usize) -> [(usize, usize); 2] {
    let shape = [1, height, width];
    let space = (height * width) as f64;
    if space <= points as f64 {
        return [(0, 1), (0, 1)];
    }
    // numpy's argsort of three values is stable.
    let mut order = [0, 1, 2];
    order.sort_by_key(|&i| shape[i]);
    let sorted = order.map(|i| shape[i] as f64);
    let mut steps = [(space / points as f64).powf(1.0 / 3.0); 3];
    if sorted.iter().zip(&steps).any(|(d, s)| d < s) {
        for dim in 0..2 {
            steps[dim] = sorted[dim];
            let rest: f64 = sorted[dim + 1..].iter().product();
            let side = (rest / points as f64).powf(1.0 / (2 - dim) as f64);
            for s in &mut steps[dim + 1..] {
                *s = side;
            }
            if sorted.iter().zip(&steps).all(|(d, s)| d >= s) {
                break;
            }
        }
    }
    let mut by_axis = [(0, 1); 3];
    for (k, &axis) in order.iter().enumerate() {
        let s = steps[k];
        by_axis[axis] = (
            (s / 2.0).floor() as usize,
            (round_half_even(s) as usize).max(1),
        );
    }
    [by_axis[1], by_axis[2]]
}

/// The seeds skimage lays for `segments` superpixels on an image of `size`: SLIC gives at
/// most about twice as many superpixels (a seed's region splits into pieces of at least half
/// the mean size).
pub fn seed_count(size: [usize; 2], segments: usize) -> usize {
    let [(y0, sy), (x0, sx)] = regular_grid(size, segments);
    size[0].saturating_sub(y0).div_ceil(sy) * size[1].saturating_sub(x0).div_ceil(sx)
}

/// numpy's `round`: halves to even.
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

/// sRGB in [0, 1] to CIE Lab, skimage's `rgb2lab` (D65, 2° observer).
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    const M: [[f64; 3]; 3] = [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ];
    const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];
    let linear = rgb.map(|c| {
        if c > 0.04045 {
            ((c + 0.055) / 1.055).powf(2.4)
        } else {
            c / 12.92
        }
    });
    let mut f = [0.0; 3];
    for (j, row) in M.iter().enumerate() {
        let xyz = linear[0] * row[0] + linear[1] * row[1] + linear[2] * row[2];
        let t = xyz / WHITE[j];
        f[j] = if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        };
    }
    [
        116.0 * f[1] - 16.0,
        500.0 * (f[0] - f[1]),
        200.0 * (f[1] - f[2]),
    ]
}

/// The superpixel labels (`0..count`, row-major) of a 3-channel `image` (CHW) of `size`, and
/// their count, for about `segments` superpixels (a pixel no seed's window reached keeps
/// `usize::MAX`, as skimage leaves it unlabelled).
pub fn slic(image: &[f32], [height, width]: [usize; 2], segments: usize) -> (Vec<usize>, usize) {
    let plane = height * width;
    let (lo, hi) = image
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(f64::from(v)), h.max(f64::from(v)))
        });
    let scaled = |v: f32| {
        let v = f64::from(v) - lo;
        if hi != lo { v / (hi - lo) } else { v }
    };
    let colours: Vec<[f64; 3]> = (0..plane)
        .map(|p| {
            lab([0, 1, 2].map(|c| scaled(image[c * plane + p]))).map(|v| v * (1.0 / COMPACTNESS))
        })
        .collect();
    // Seeds on the grid, then the window steps of a grid with as many points as seeds.
    let [(y0, sy), (x0, sx)] = regular_grid([height, width], segments);
    let mut centres: Vec<[f64; 5]> = Vec::new();
    for y in (y0..height).step_by(sy) {
        for x in (x0..width).step_by(sx) {
            centres.push([y as f64, x as f64, 0.0, 0.0, 0.0]);
        }
    }
    let step = sy.max(sx) as f64;
    let [(_, wy), (_, wx)] = regular_grid([height, width], centres.len());
    let spatial = 1.0 / (step * step);
    let mut nearest = vec![usize::MAX; plane];
    let mut distance = vec![f64::MAX; plane];
    for _ in 0..ROUNDS {
        distance.fill(f64::MAX);
        for (k, c) in centres.iter().enumerate() {
            if c[0].is_nan() {
                continue; // an empty segment: its distances are NaN, never nearer
            }
            let (ylo, yhi) = (window_low(c[0], wy), window_high(c[0], wy, height));
            let (xlo, xhi) = (window_low(c[1], wx), window_high(c[1], wx, width));
            for y in ylo..yhi {
                let dy = (c[0] - y as f64) * (c[0] - y as f64);
                for x in xlo..xhi {
                    let dx = (c[1] - x as f64) * (c[1] - x as f64);
                    let p = y * width + x;
                    let mut d = (0.0 + dy + dx) * spatial;
                    let mut colour = 0.0;
                    for (v, m) in colours[p].iter().zip(&c[2..]) {
                        colour += (v - m) * (v - m);
                    }
                    d += colour;
                    if distance[p] > d {
                        nearest[p] = k;
                        distance[p] = d;
                    }
                }
            }
        }
        let mut sums = vec![[0.0f64; 5]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for y in 0..height {
            for x in 0..width {
                let p = y * width + x;
                let Some(s) = sums.get_mut(nearest[p]) else {
                    continue;
                };
                counts[nearest[p]] += 1;
                s[0] += y as f64;
                s[1] += x as f64;
                for (acc, v) in s[2..].iter_mut().zip(&colours[p]) {
                    *acc += v;
                }
            }
        }
        for ((c, s), &n) in centres.iter_mut().zip(&sums).zip(&counts) {
            *c = s.map(|v| v / n as f64);
        }
    }
    let mean_size = plane as f64 / centres.len() as f64;
    connected(
        &nearest,
        [height, width],
        (0.5 * mean_size) as usize,
        ((3.0 * mean_size) as usize).max(1),
    )
}

/// `max(c - 2 step, 0)` truncated, as skimage's window.
fn window_low(c: f64, step: usize) -> usize {
    (c - 2.0 * step as f64).max(0.0) as usize
}

/// `min(c + 2 step + 1, end)` truncated.
fn window_high(c: f64, step: usize, end: usize) -> usize {
    (c + 2.0 * step as f64 + 1.0).min(end as f64) as usize
}

/// skimage's `_enforce_label_connectivity_cython` on a 2-D label field: each 4-connected piece
/// (searched breadth first, at most `max_size` pixels at a time) gets a new label, and a piece
/// under `min_size` takes the label of the last labelled neighbour met instead.
fn connected(
    labels: &[usize],
    [height, width]: [usize; 2],
    min_size: usize,
    max_size: usize,
) -> (Vec<usize>, usize) {
    const UNSET: usize = usize::MAX;
    let mut out = vec![UNSET; labels.len()];
    let mut next = 0;
    let mut queue: Vec<usize> = Vec::with_capacity(max_size.max(1));
    for start in 0..labels.len() {
        if labels[start] == UNSET || out[start] != UNSET {
            continue;
        }
        let label = labels[start];
        let mut adjacent = next;
        out[start] = next;
        queue.clear();
        queue.push(start);
        let mut visited = 0;
        'search: while visited < queue.len() && queue.len() < max_size {
            let p = queue[visited];
            let (y, x) = (p / width, p % width);
            let neighbours = [
                (x + 1 < width).then(|| p + 1),
                (x > 0).then(|| p - 1),
                (y + 1 < height).then(|| p + width),
                (y > 0).then(|| p - width),
            ];
            for q in neighbours.into_iter().flatten() {
                if labels[q] == label && out[q] == UNSET {
                    out[q] = next;
                    queue.push(q);
                    if queue.len() >= max_size {
                        break 'search;
                    }
                } else if out[q] != UNSET && out[q] != next {
                    adjacent = out[q];
                }
            }
            visited += 1;
        }
        if queue.len() < min_size {
            for &p in &queue {
                out[p] = adjacent;
            }
        } else {
            next += 1;
        }
    }
    // When every piece was too small, they all took label 0 without a new label being
    // counted (skimage returns that one label).
    let count = out
        .iter()
        .filter(|&&l| l != UNSET)
        .max()
        .map_or(0, |&l| l + 1);
    (out, count.max(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_gives_labels_below_their_count() {
        // Uniform noise: every piece is too small, and all join label 0 (skimage's one label).
        let noise = crate::cam::random::uniforms(5, 3 * 64 * 64, [0.0, 1.0]);
        let (labels, count) = slic(&noise, [64, 64], 100);
        // skimage gives [0] for this image (uniforms(5) in tests/reference).
        assert_eq!(count, 1);
        assert!(labels.iter().all(|&l| l == 0));
        assert_eq!(seed_count([64, 64], 100), 121);
        assert_eq!(seed_count([224, 224], 100), 100);
    }
}
