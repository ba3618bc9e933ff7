//! What a reviewer asks of a summary: each mean's 95 % bootstrap interval, and for each metric
//! which of two methods is better on the same explanations (Wilcoxon's signed-rank test on the
//! pairs, Holm-corrected over the metric's pairs of methods). Rows are sorted before they are
//! paired and resampled, so shards merged in any order give the same figures (a pair of
//! methods is named in the order the methods first appear, which the shards' order can change).

use std::collections::BTreeMap;

use super::row::{Row, extra_names, method_order, sorted};
use super::stats::{bootstrap_mean_ci, holm, wilcoxon};
use super::table::info;

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;
/// The bootstrap's seed (fixed: an interval depends on the rows only).
pub const SEED: u64 = 2021;
/// Holm-corrected p-values below this name a winner.
pub const ALPHA: f64 = 0.05;

/// The metrics that get intervals and tests: the paper's, except the pointing game (a
/// per-class accuracy), then the others the rows hold.
pub fn tested_metrics(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = ["ebpg", "bbox", "drop", "increase", "deletion", "insertion"]
        .map(String::from)
        .to_vec();
    names.extend(extra_names(rows));
    names
}

/// A method's mean of a metric with its 95 % interval (on the summary column's scale).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Interval {
    /// Method label.
    pub method: String,
    /// Metric name.
    pub metric: String,
    /// Explanations with a value.
    pub n: usize,
    /// The mean.
    pub mean: f64,
    /// The interval's lower end.
    pub lo: f64,
    /// The interval's upper end.
    pub hi: f64,
}

/// Two methods compared on one metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Metric name.
    pub metric: String,
    /// First method.
    pub a: String,
    /// Second method.
    pub b: String,
    /// Pairs (same image and class) where both have a value.
    pub n: usize,
    /// Wilcoxon's statistic, `min(R+, R-)`.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Holm-corrected over the metric's comparisons.
    pub p_holm: f64,
    /// The better method when `p_holm` < [`ALPHA`] (by the metric's direction).
    pub better: Option<String>,
}

/// Every (method, metric)'s interval, methods in first-seen order.
pub fn intervals(rows: &[Row]) -> Vec<Interval> {
    let all = sorted(rows);
    let metrics = tested_metrics(rows);
    let mut out = Vec::new();
    for m in method_order(rows) {
        for name in &metrics {
            let v: Vec<f64> = all
                .iter()
                .filter(|r| r.method == m)
                .map(|r| r.value(name))
                .filter(|v| !v.is_nan())
                .collect();
            let (lo, hi) = bootstrap_mean_ci(&v, RESAMPLES, 0.95, SEED);
            out.push(Interval {
                method: m.to_string(),
                metric: name.clone(),
                n: v.len(),
                mean: if v.is_empty() {
                    f64::NAN
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                },
                lo,
                hi,
            });
        }
    }
    out
}

/// Every pair of methods on every metric, paired by (image, class); pairs the test cannot
/// judge (no non-zero difference) are left out.
pub fn comparisons(rows: &[Row]) -> Vec<Comparison> {
    let all = sorted(rows);
    let methods = method_order(rows);
    let mut out = Vec::new();
    for name in tested_metrics(rows) {
        let higher = info(&name).is_none_or(|m| m.higher_is_better);
        let by: BTreeMap<(&str, &str, &str), f64> = all
            .iter()
            .map(|r| {
                (
                    (r.image.as_str(), r.class.as_str(), r.method.as_str()),
                    r.value(&name),
                )
            })
            .collect();
        let mut found = Vec::new();
        for (i, a) in methods.iter().enumerate() {
            for b in &methods[i + 1..] {
                let (mut va, mut vb) = (Vec::new(), Vec::new());
                for ((image, class, method), &x) in &by {
                    if method != a {
                        continue;
                    }
                    if let Some(&y) = by.get(&(image, class, b))
                        && !x.is_nan()
                        && !y.is_nan()
                    {
                        va.push(x);
                        vb.push(y);
                    }
                }
                if let Some(w) = wilcoxon(&va, &vb) {
                    let winner = if (w.r_plus > w.r_minus) == higher {
                        a
                    } else {
                        b
                    };
                    found.push((a, b, va.len(), w, winner));
                }
            }
        }
        let adjusted = holm(&found.iter().map(|f| f.3.p).collect::<Vec<_>>());
        for ((a, b, n, w, winner), p_holm) in found.into_iter().zip(adjusted) {
            out.push(Comparison {
                metric: name.clone(),
                a: a.to_string(),
                b: b.to_string(),
                n,
                statistic: w.statistic,
                p: w.p,
                p_holm,
                better: (p_holm < ALPHA).then(|| winner.to_string()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(image: usize, method: &str, ebpg: f64, deletion: f64) -> Row {
        Row {
            image: format!("img{image}"),
            class: "cat".into(),
            target: 0,
            method: method.into(),
            ebpg,
            bbox: None,
            drop: 0.5,
            increase: false,
            deletion,
            insertion: 0.5,
            pointing: None,
            ms: 1.0,
            extra: BTreeMap::from([("sparseness".to_string(), Some(0.5))]),
            curves: BTreeMap::new(),
        }
    }

    #[test]
    fn the_better_method_by_each_metrics_direction() {
        // "a" has the higher EBPG (higher is better) and the higher deletion AUC (lower is
        // better) on all 12 images: exact test, p = 2 / 2^12.
        let mut rows = Vec::new();
        for i in 0..12 {
            let x = i as f64 / 100.0;
            rows.push(row(i, "a", 0.6 + x, 0.3 + x));
            rows.push(row(i, "b", 0.5 + x * 0.9, 0.2 + x * 0.8));
        }
        let c = comparisons(&rows);
        let ebpg = c.iter().find(|c| c.metric == "ebpg").unwrap();
        assert_eq!(ebpg.better.as_deref(), Some("a"));
        assert_eq!((ebpg.n, ebpg.statistic), (12, 0.0));
        assert!((ebpg.p - 2.0 / 4096.0).abs() < 1e-15, "{}", ebpg.p);
        let deletion = c.iter().find(|c| c.metric == "deletion").unwrap();
        assert_eq!(deletion.better.as_deref(), Some("b"));
        // Equal values everywhere (drop, insertion, sparseness) give no test; no bbox at all.
        let tested: Vec<&str> = c.iter().map(|c| c.metric.as_str()).collect();
        assert_eq!(tested, ["ebpg", "deletion"]);
        // Shuffled rows give the same intervals.
        let mut reversed = rows.clone();
        reversed.reverse();
        reversed.swap(0, 3);
        let (i1, i2) = (intervals(&rows), intervals(&reversed));
        let key = |i: &Interval| (i.method.clone(), i.metric.clone());
        let mut i2 = i2;
        i2.sort_by_key(key);
        let mut i1 = i1;
        i1.sort_by_key(key);
        assert_eq!(format!("{i1:?}"), format!("{i2:?}"), "NaN for bbox on both");
        let e = i1
            .iter()
            .find(|i| i.method == "a" && i.metric == "ebpg")
            .unwrap();
        assert!(
            e.lo < e.mean && e.mean < e.hi && (e.mean - 65.5).abs() < 1e-9,
            "{e:?}"
        );
    }

    #[test]
    fn rows_without_extra_metrics_still_read() {
        let old = r#"{"image":"a","class":"cat","target":1,"method":"igcam","ebpg":0.5,"bbox":null,"drop":0.1,"increase":false,"deletion":0.2,"insertion":null,"pointing":null,"ms":3.0}"#;
        let r: Row = serde_json::from_str(old).unwrap();
        assert!(r.extra.is_empty() && r.insertion.is_nan());
        assert!(r.value("sparseness").is_nan());
        assert_eq!(r.value("ebpg"), 50.0);
    }
}
