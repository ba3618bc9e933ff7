//! Reductions over a fixed number of lanes, wide enough for any vector unit, so that they
//! vectorise (an in-order float fold does not) and give the same value on every ISA.

/// Lanes of the reductions.
pub const LANES: usize = 16;

/// The sum of `f(a[i], b[i])` over the two slices (of equal length), in [`LANES`] partial
/// sums, then the tail and the lanes added.
#[inline(always)]
pub fn sum_of(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for ((s, &x), &y) in lanes.iter_mut().zip(xa).zip(xb) {
            *s += f(x, y);
        }
    }
    let tail: f32 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(&x, &y)| f(x, y))
        .sum();
    tail + lanes.iter().sum::<f32>()
}

/// `values` folded into [`LANES`] lanes by `step` (each lane from `init`), then the lanes and
/// the values left over, in that order: a minimum or maximum (`step` a comparison that skips
/// a NaN) the compiler vectorises.
#[inline(always)]
pub fn fold(values: &[f32], init: f32, step: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, v);
        }
    }
    lanes
        .into_iter()
        .chain(rest.iter().copied())
        .fold(init, step)
}
