//! The statistics of a summary: a bootstrap confidence interval for each mean, and paired
//! comparisons of methods by Wilcoxon's signed-rank test (scipy 1.17's `wilcoxon` with its
//! defaults) with Holm's correction for the several comparisons of a metric.

/// A two-sided Wilcoxon signed-rank test of paired samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wilcoxon {
    /// `min(R+, R-)`, the rank sums of the positive and negative differences.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p: f64,
    /// The rank sum of the differences `a - b` above zero.
    pub r_plus: f64,
    /// The rank sum of those below zero (`R+ > R-`: `a` tends to be larger).
    pub r_minus: f64,
}

/// The percentile bootstrap interval of the mean at `level` (e.g. 0.95), from `resamples`
/// resamples drawn reproducibly from `seed`; NaN values are left out, and fewer than two
/// values give a NaN interval.
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, level: f64, seed: u64) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.len() < 2 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = crate::cam::random::Stream::new(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (quantile(&means, tail), quantile(&means, 1.0 - tail))
}

/// numpy's default (linear) quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Average ranks of `values` (1-based), and the tie correction `sum(t^3 - t)` over the groups
/// of `t` equal values (0: no ties).
pub(crate) fn average_ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for &k in &order[i..=j] {
            ranks[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    (ranks, ties)
}

/// `R+` of differences `d` (zeros dropped) with their ranks.
fn rank_sum_plus(d: &[f64], ranks: &[f64]) -> f64 {
    d.iter()
        .zip(ranks)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum()
}

/// The exact null distribution of `R+` for `n` untied ranks: `counts[k]` of the `2^n` sign
/// patterns sum to `k`.
fn exact_counts(n: usize) -> Vec<f64> {
    let top = n * (n + 1) / 2;
    let mut counts = vec![0.0; top + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for k in (r..=top).rev() {
            counts[k] += counts[k - r];
        }
    }
    counts
}

/// The standard normal's upper tail, `P(Z > z)`.
fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Wilcoxon's signed-rank test of `a - b`, two-sided, as `scipy.stats.wilcoxon(a, b)` with its
/// defaults computes it: zero differences dropped; the exact distribution for up to 50 pairs
/// without ties or zeros; for up to 13 pairs with ties or zeros, every sign pattern enumerated
/// (scipy's permutation test); otherwise the normal approximation with the tie correction and
/// no continuity correction. `None` for samples of different lengths or no non-zero difference.
pub fn wilcoxon(a: &[f64], b: &[f64]) -> Option<Wilcoxon> {
    if a.len() != b.len() {
        return None;
    }
    let all: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let d: Vec<f64> = all.iter().copied().filter(|x| *x != 0.0).collect();
    if d.is_empty() || d.iter().any(|x| x.is_nan()) {
        return None;
    }
    let zeros = all.len() - d.len();
    let n = d.len();
    let abs: Vec<f64> = d.iter().map(|x| x.abs()).collect();
    let (ranks, tie_sum) = average_ranks(&abs);
    let r_plus = rank_sum_plus(&d, &ranks);
    let r_minus = (n * (n + 1)) as f64 / 2.0 - r_plus;
    let p = if all.len() <= 50 && tie_sum == 0.0 && zeros == 0 {
        let counts = exact_counts(n);
        let total: f64 = counts.iter().sum();
        let k_lo = r_plus.floor() as usize;
        let k_hi = r_plus.ceil() as usize;
        let sf: f64 = counts[k_lo..].iter().sum::<f64>() / total;
        let cdf: f64 = counts[..=k_hi].iter().sum::<f64>() / total;
        (2.0 * sf.min(cdf)).min(1.0)
    } else if all.len() <= 13 {
        // Every sign pattern of the non-zero differences (each zero doubles every count,
        // which cancels in the ratios).
        let eps = f64::EPSILON * 100.0 * r_plus.abs();
        let (mut less, mut greater) = (0usize, 0usize);
        let patterns = 1usize << n;
        for bits in 0..patterns {
            let t: f64 = (0..n)
                .filter(|i| bits >> i & 1 == 1)
                .map(|i| ranks[i])
                .sum();
            less += usize::from(t <= r_plus + eps);
            greater += usize::from(t >= r_plus - eps);
        }
        (2.0 * less.min(greater) as f64 / patterns as f64).min(1.0)
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_sum / 2.0) / 24.0).sqrt();
        let z = (r_plus - mean) / se;
        (2.0 * normal_sf(z.abs())).min(1.0)
    };
    Some(Wilcoxon {
        statistic: r_plus.min(r_minus),
        p,
        r_plus,
        r_minus,
    })
}

/// Holm's step-down adjustment of p-values (each multiplied by the number of hypotheses not
/// yet rejected, kept non-decreasing, capped at 1); NaN stays NaN and does not count.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail() {
        assert!((normal_sf(1.959963984540054) - 0.025).abs() < 1e-12);
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_sf(-3.0) - 0.9986501019683699).abs() < 1e-15);
    }

    #[test]
    fn bootstrap_brackets_the_mean() {
        let v: Vec<f64> = (0..40).map(|i| f64::from(i % 7) / 7.0).collect();
        let mean = v.iter().sum::<f64>() / 40.0;
        let (lo, hi) = bootstrap_mean_ci(&v, 2000, 0.95, 1);
        assert!(lo < mean && mean < hi, "{lo} {mean} {hi}");
        assert!(hi - lo < 0.25 && hi - lo > 0.05, "{lo} {hi}");
        assert_eq!((lo, hi), bootstrap_mean_ci(&v, 2000, 0.95, 1), "seeded");
        assert_eq!(bootstrap_mean_ci(&[0.5; 5], 100, 0.95, 1), (0.5, 0.5));
        assert!(bootstrap_mean_ci(&[0.5], 100, 0.95, 1).0.is_nan());
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0]), (vec![2.5, 1.0, 2.5], 6.0));
        assert_eq!(average_ranks(&[2.0, 1.0]).1, 0.0);
        assert_eq!(exact_counts(3), [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]);
    }
}
