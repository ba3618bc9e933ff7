//! ROAD, RemOve And Debias (Rong et al., 2022), as pytorch-grad-cam 1.5 computes it: at
//! percentile p, MoRF replaces the pixels at or above the map's p-th percentile, LeRF those at
//! or below its (100 - p)-th (see [`kept`]), by a noisy linear imputation from their
//! neighbours, and the class confidence's change is averaged over the percentiles; the combined
//! score is `(LeRF - MoRF) / 2`.

/// The 8 neighbours and their weights (pytorch-grad-cam's `neighbors_weights`): 1/6 for the
/// edge neighbours, 1/12 for the corners.
const NEIGHBOURS: [((isize, isize), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// pytorch-grad-cam's default percentiles.
pub const PERCENTILES: [f64; 9] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0];

/// numpy's default (linear) percentile `p` (0..=100) of `values`, computed in f32 as numpy does
/// for a float32 map.
pub fn percentile(values: &[f32], p: f64) -> f32 {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let at = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let t = (at - lo as f64) as f32;
    v[lo] + (v[hi] - v[lo]) * t
}

/// The pixels ROAD keeps at percentile `p`: those whose map value (MoRF) or one minus it (LeRF)
/// lies below the percentile of the same values; the rest are imputed.
pub fn kept(map: &[f32], p: f64, most_relevant_first: bool) -> Vec<bool> {
    let values: Vec<f32> = if most_relevant_first {
        map.to_vec()
    } else {
        map.iter().map(|v| 1.0 - v).collect()
    };
    let threshold = percentile(&values, p);
    values.iter().map(|&v| v < threshold).collect()
}

/// The noisy linear imputation of `image` (CHW, `size` = `[height, width]`): every pixel not
/// `known` becomes the weighted mean of its neighbours inside the image (known values, and the
/// other imputed ones: one sparse symmetric system, solved for all channels at once by
/// Jacobi-preconditioned conjugate gradients to a residual of 1e-6, started from the solution
/// on the image halved), plus `noise_scale` times `noise[c * n + k]` for the `k`-th imputed pixel
/// (in index order) of channel `c`. `None` when no pixel is known (the system has no solution).
pub fn impute(
    image: &[f32],
    size: [usize; 2],
    known: &[bool],
    noise: &[f32],
    noise_scale: f32,
) -> Option<Vec<f32>> {
    let plane = size[0] * size[1];
    let mut out = infill(image, size, known)?;
    let unknown: Vec<usize> = (0..plane).filter(|&p| !known[p]).collect();
    for c in 0..image.len() / plane.max(1) {
        for (k, &p) in unknown.iter().enumerate() {
            let e = noise.get(c * unknown.len() + k).copied().unwrap_or(0.0);
            out[c * plane + p] += noise_scale * e;
        }
    }
    Some(out)
}

/// [`impute`] without the noise.
fn infill(image: &[f32], size: [usize; 2], known: &[bool]) -> Option<Vec<f32>> {
    let [h, w] = size;
    let plane = h * w;
    let channels = image.len() / plane.max(1);
    let unknown: Vec<usize> = (0..plane).filter(|&p| !known[p]).collect();
    let n = unknown.len();
    if n == 0 {
        return Some(image.to_vec());
    }
    if n == plane {
        return None;
    }
    let mut var = vec![u32::MAX; plane];
    for (k, &p) in unknown.iter().enumerate() {
        var[p] = k as u32;
    }
    // The system in rows: the diagonal (the weights of the neighbours inside the image), the
    // unknown neighbours (off the diagonal, compressed rows), and the right-hand side from the
    // known neighbours, for every channel (`b[k * channels + c]`).
    let mut system = System {
        channels,
        diagonal: vec![0.0; n],
        starts: Vec::with_capacity(n + 1),
        columns: Vec::with_capacity(8 * n),
        weights: Vec::with_capacity(8 * n),
    };
    let mut b = vec![0.0; n * channels];
    system.starts.push(0);
    for (k, &p) in unknown.iter().enumerate() {
        let (y, x) = ((p / w) as isize, (p % w) as isize);
        for ((dy, dx), weight) in NEIGHBOURS {
            let (ny, nx) = (y + dy, x + dx);
            if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                continue;
            }
            system.diagonal[k] += weight;
            let q = ny as usize * w + nx as usize;
            if known[q] {
                for c in 0..channels {
                    b[k * channels + c] += weight * f64::from(image[c * plane + q]);
                }
            } else {
                system.columns.push(var[q]);
                system.weights.push(weight);
            }
        }
        system.starts.push(system.columns.len() as u32);
    }
    // The start: the solution on the image halved (each block of 2x2 pixels known where any of
    // its pixels is, with their mean), read back at each pixel's block.
    let mut x = vec![0.0; n * channels];
    if h >= 8 && w >= 8 {
        let (ch, cw) = (h.div_ceil(2), w.div_ceil(2));
        let mut coarse = vec![0.0f32; channels * ch * cw];
        let mut coarse_known = vec![false; ch * cw];
        for cy in 0..ch {
            for cx in 0..cw {
                let block: Vec<usize> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| (2 * cy + dy, 2 * cx + dx))
                    .filter(|&(y, x)| y < h && x < w && known[y * w + x])
                    .map(|(y, x)| y * w + x)
                    .collect();
                if block.is_empty() {
                    continue;
                }
                coarse_known[cy * cw + cx] = true;
                for c in 0..channels {
                    let sum: f32 = block.iter().map(|&p| image[c * plane + p]).sum();
                    coarse[c * ch * cw + cy * cw + cx] = sum / block.len() as f32;
                }
            }
        }
        if let Some(solved) = infill(&coarse, [ch, cw], &coarse_known) {
            for (k, &p) in unknown.iter().enumerate() {
                let q = (p / w / 2) * cw + (p % w) / 2;
                for c in 0..channels {
                    x[k * channels + c] = f64::from(solved[c * ch * cw + q]);
                }
            }
        }
    }
    system.solve(&b, &mut x);
    let mut out = image.to_vec();
    for (k, &p) in unknown.iter().enumerate() {
        for c in 0..channels {
            out[c * plane + p] = x[k * channels + c] as f32;
        }
    }
    Some(out)
}

/// The imputation's symmetric positive definite system `(D - W) x = b` for several channels.
struct System {
    channels: usize,
    diagonal: Vec<f64>,
    starts: Vec<u32>,
    columns: Vec<u32>,
    weights: Vec<f64>,
}

impl System {
    /// `out = (D - W) x`, every channel.
    fn apply(&self, x: &[f64], out: &mut [f64]) {
        let ch = self.channels;
        for (k, d) in self.diagonal.iter().enumerate() {
            let row = self.starts[k] as usize..self.starts[k + 1] as usize;
            for c in 0..ch {
                let mut v = d * x[k * ch + c];
                for (&j, &wt) in self.columns[row.clone()]
                    .iter()
                    .zip(&self.weights[row.clone()])
                {
                    v -= wt * x[j as usize * ch + c];
                }
                out[k * ch + c] = v;
            }
        }
    }

    /// Per channel, the dot product of `a` and `b`.
    fn dots(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        let ch = self.channels;
        let mut d = vec![0.0; ch];
        for (x, y) in a.chunks_exact(ch).zip(b.chunks_exact(ch)) {
            for c in 0..ch {
                d[c] += x[c] * y[c];
            }
        }
        d
    }

    /// Jacobi-preconditioned conjugate gradients from `x`, each channel on its own scalars,
    /// until each residual is within 1e-6 of its right-hand side (or 20 n iterations). On
    /// voc-mini's maps, 1e-10 moves the ROAD scores by at most 1e-5 of themselves (the noise
    /// added after is 0.01) and takes twice as long.
    fn solve(&self, b: &[f64], x: &mut [f64]) {
        let ch = self.channels;
        let n = self.diagonal.len();
        // Relative, with an absolute floor: a channel whose right-hand side is 0 (all its known
        // neighbours 0) must stop too.
        let limit: Vec<f64> = self
            .dots(b, b)
            .iter()
            .map(|v| (1e-12 * v).max(1e-24 * n as f64))
            .collect();
        let mut r = vec![0.0; b.len()];
        self.apply(x, &mut r);
        for (r, b) in r.iter_mut().zip(b) {
            *r = b - *r;
        }
        let precondition = |r: &[f64], z: &mut [f64]| {
            for ((z, r), d) in z
                .chunks_exact_mut(ch)
                .zip(r.chunks_exact(ch))
                .zip(&self.diagonal)
            {
                for c in 0..ch {
                    z[c] = r[c] / d;
                }
            }
        };
        let mut z = vec![0.0; b.len()];
        precondition(&r, &mut z);
        let mut p = z.clone();
        let mut rz = self.dots(&r, &z);
        let mut ap = vec![0.0; b.len()];
        for _ in 0..20 * n {
            let rr = self.dots(&r, &r);
            if rr.iter().zip(&limit).all(|(v, l)| v <= l) {
                break;
            }
            self.apply(&p, &mut ap);
            let pap = self.dots(&p, &ap);
            let alpha: Vec<f64> = (0..ch)
                .map(|c| if pap[c] > 0.0 { rz[c] / pap[c] } else { 0.0 })
                .collect();
            for (((x, r), p), ap) in x
                .chunks_exact_mut(ch)
                .zip(r.chunks_exact_mut(ch))
                .zip(p.chunks_exact(ch))
                .zip(ap.chunks_exact(ch))
            {
                for c in 0..ch {
                    x[c] += alpha[c] * p[c];
                    r[c] -= alpha[c] * ap[c];
                }
            }
            precondition(&r, &mut z);
            let next = self.dots(&r, &z);
            let beta: Vec<f64> = (0..ch)
                .map(|c| if rz[c] > 0.0 { next[c] / rz[c] } else { 0.0 })
                .collect();
            rz = next;
            for (p, z) in p.chunks_exact_mut(ch).zip(z.chunks_exact(ch)) {
                for c in 0..ch {
                    p[c] = z[c] + beta[c] * p[c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_masks() {
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 90.0), 2.8);
        let map = [0.1, 0.9, 0.5, 0.3];
        // MoRF at 50: threshold 0.4, keeps 0.1 and 0.3; LeRF: 1 - map, keeps 0.9 and 0.5.
        assert_eq!(kept(&map, 50.0, true), [true, false, false, true]);
        assert_eq!(kept(&map, 50.0, false), [false, true, true, false]);
    }

    #[test]
    fn imputes_the_neighbours_weighted_mean() {
        // A 3x3 plane with only the centre unknown: the mean of its neighbours (weights sum to 1).
        let image: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut known = [true; 9];
        known[4] = false;
        let out = impute(&image, [3, 3], &known, &[], 0.0).unwrap();
        let want = (0.0 + 2.0 + 6.0 + 8.0) / 12.0 + (1.0 + 3.0 + 5.0 + 7.0) / 6.0;
        assert!((f64::from(out[4]) - want).abs() < 1e-6, "{}", out[4]);
        // A linear ramp is reproduced exactly where all of it is unknown but the border.
        let ramp: Vec<f32> = (0..25).map(|p| (p % 5) as f32).collect();
        let known: Vec<bool> = (0..25)
            .map(|p| p % 5 == 0 || p % 5 == 4 || !(5..20).contains(&p))
            .collect();
        let out = impute(&ramp, [5, 5], &known, &[], 0.0).unwrap();
        for (p, (o, r)) in out.iter().zip(&ramp).enumerate() {
            assert!((o - r).abs() < 1e-6, "pixel {p}: {o} vs {r}");
        }
        // Noise goes to the imputed pixels, channel by channel, in index order.
        let two: Vec<f32> = vec![1.0; 18];
        let out = impute(
            &two,
            [3, 3],
            &{
                let mut k = [true; 9];
                k[4] = false;
                k
            },
            &[2.0, -3.0],
            0.5,
        )
        .unwrap();
        assert_eq!((out[4], out[13]), (2.0, -0.5));
        assert!(impute(&image, [3, 3], &[false; 9], &[], 0.0).is_none());
    }
}
