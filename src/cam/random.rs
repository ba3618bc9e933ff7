//! igcam's documented random generator, so that a seed reproduces the noise tunnel's noise and
//! RandomCAM's weights anywhere (the reference scripts rebuild it in NumPy): SplitMix64 (Steele
//! et al., 2014) from the seed; a uniform value takes one draw `d`, `low + (high - low) *
//! (d >> 11) / 2^53`; a standard normal two, by Box-Muller's cosine branch
//! (`u1 = ((d1 >> 11) + 1) / 2^53`, `u2 = (d2 >> 11) / 2^53`, `z = sqrt(-2 ln u1) cos(2π u2)`).

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: the next 64-bit draw.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `2^-53`: a draw's top 53 bits as a fraction of 1.
const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// Draws one at a time from `seed`: an index below `n` is `floor(n (d >> 11) / 2^53)` of the
/// next draw `d` (eval's bootstrap and Faithfulness Correlation's subsets).
pub struct Stream(u64);

impl Stream {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An index in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let i = ((next(&mut self.0) >> 11) as f64 * UNIT * n as f64) as usize;
        i.min(n - 1)
    }
}

/// The seed of stream `k` made from `seed` (eval's Max-Sensitivity copies, MPRT's layers):
/// `seed + (k + 1) * 0xD1B54A32D192ED03`, wrapping.
pub fn substream(seed: u64, k: usize) -> u64 {
    seed.wrapping_add((k as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// `count` uniform values in `[low, high)` from `seed`.
pub fn uniforms(seed: u64, count: usize, [low, high]: [f64; 2]) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| (low + (high - low) * (next(&mut state) >> 11) as f64 * UNIT) as f32)
        .collect()
}

/// `count` standard normal values from `seed`, starting at value `first` of its sequence
/// (SplitMix64's state after `k` draws is `seed + k γ`, so any stretch is drawn on its own).
pub fn standard_normals(seed: u64, first: usize, count: usize) -> Vec<f32> {
    let mut state = seed.wrapping_add((2 * first as u64).wrapping_mul(GAMMA));
    (0..count)
        .map(|_| {
            let u1 = ((next(&mut state) >> 11) + 1) as f64 * UNIT;
            let u2 = (next(&mut state) >> 11) as f64 * UNIT;
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_splitmix64_and_its_normals_look_normal() {
        // SplitMix64 from 0: the reference sequence's first value.
        let mut state = 0;
        assert_eq!(next(&mut state), 0xE220_A839_7B1D_CDAF);
        let z = standard_normals(7, 0, 100_000);
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / z.len() as f64;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / z.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
        assert_eq!(standard_normals(7, 0, 3), standard_normals(7, 0, 5)[..3]);
        // Any stretch on its own equals the same stretch of the whole sequence.
        assert_eq!(standard_normals(7, 2, 3), standard_normals(7, 0, 5)[2..]);
    }

    #[test]
    fn uniforms_stay_in_their_range() {
        let u = uniforms(1, 10_000, [-1.0, 1.0]);
        assert!(u.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let mean = u.iter().map(|&v| v as f64).sum::<f64>() / u.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
    }
}
