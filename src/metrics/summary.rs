//! Per-explanation rows and the Table-1-style summary built from them. The summary is computed
//! from rows sorted by (image, class, method), so merged shards give exactly the unsharded table.

use std::collections::BTreeMap;

use super::pointing::PointingTally;
pub use super::row::{Row, extra_names};
use super::row::{method_order, sorted};
use super::significance::{Interval, intervals};

/// One method's line of the table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MethodSummary {
    /// Method label.
    pub method: String,
    /// Explanations scored.
    pub n: usize,
    /// Mean EBPG, %.
    pub ebpg: f64,
    /// Mean Bbox accuracy, %.
    pub bbox: f64,
    /// Drop, %.
    pub drop: f64,
    /// Increase, %.
    pub increase: f64,
    /// Mean deletion AUC.
    pub deletion: f64,
    /// Mean insertion AUC.
    pub insertion: f64,
    /// Pointing accuracy averaged per class, %.
    pub pointing: f64,
    /// Mean milliseconds per explanation.
    pub ms: f64,
    /// Means of the metrics beyond the paper's set, by name, in the metric table's order.
    pub extra: Vec<(String, f64)>,
    /// The 95 % bootstrap interval of each mean (on its column's scale), in
    /// [`super::significance::tested_metrics`] order.
    pub intervals: Vec<Interval>,
}

/// The mean of the values that are not NaN (NaN when there are none).
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// How many metric values of `rows` are NaN (they are left out of the means).
pub fn nan_metrics(rows: &[Row]) -> usize {
    rows.iter()
        .flat_map(|r| {
            [
                r.ebpg,
                r.drop,
                r.deletion,
                r.insertion,
                r.bbox.unwrap_or(0.0),
            ]
        })
        .filter(|v| v.is_nan())
        .count()
}

/// Summarises rows per method, in first-seen method order.
pub fn summarise(rows: &[Row]) -> Vec<MethodSummary> {
    let mut all_intervals = intervals(rows);
    let mut by_method: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in sorted(rows) {
        by_method.entry(&r.method).or_default().push(r);
    }
    method_order(rows)
        .into_iter()
        .map(|m| {
            let rs = &by_method[m];
            let mut tally = PointingTally::default();
            for r in rs {
                if let Some(hit) = r.pointing {
                    tally.add(&r.class, hit);
                }
            }
            MethodSummary {
                method: m.to_string(),
                n: rs.len(),
                ebpg: 100.0 * mean(rs.iter().map(|r| r.ebpg)),
                bbox: 100.0 * mean(rs.iter().filter_map(|r| r.bbox)),
                drop: 100.0 * mean(rs.iter().map(|r| r.drop)),
                increase: 100.0 * mean(rs.iter().map(|r| f64::from(u8::from(r.increase)))),
                deletion: mean(rs.iter().map(|r| r.deletion)),
                insertion: mean(rs.iter().map(|r| r.insertion)),
                pointing: 100.0 * tally.accuracy().unwrap_or(f64::NAN),
                ms: mean(rs.iter().map(|r| r.ms)),
                extra: extra_names(rows)
                    .into_iter()
                    .map(|n| (n.clone(), mean(rs.iter().map(|r| r.value(&n)))))
                    .collect(),
                intervals: {
                    let (mine, rest) = all_intervals.drain(..).partition(|i| i.method == m);
                    all_intervals = rest;
                    mine
                },
            }
        })
        .collect()
}

/// A column title: the name and which way is better.
fn title(name: &str) -> String {
    match super::table::info(name) {
        Some(m) if m.higher_is_better => format!("{name} (higher)"),
        Some(_) => format!("{name} (lower)"),
        None => name.to_string(),
    }
}

const HEADER: [&str; 10] = [
    "method",
    "n",
    "EBPG %",
    "Bbox %",
    "Drop % (lower)",
    "Increase % (higher)",
    "Deletion AUC (lower)",
    "Insertion AUC (higher)",
    "Pointing %",
    "ms/explanation",
];

fn header(summary: &[MethodSummary]) -> Vec<String> {
    let mut h: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
    if let Some(first) = summary.first() {
        h.extend(first.extra.iter().map(|(k, _)| title(k)));
    }
    h
}

fn cells(s: &MethodSummary) -> Vec<String> {
    let mut c = vec![
        s.method.clone(),
        s.n.to_string(),
        format!("{:.2}", s.ebpg),
        format!("{:.2}", s.bbox),
        format!("{:.2}", s.drop),
        format!("{:.2}", s.increase),
        format!("{:.4}", s.deletion),
        format!("{:.4}", s.insertion),
        format!("{:.2}", s.pointing),
        format!("{:.1}", s.ms),
    ];
    c.extend(s.extra.iter().map(|(_, v)| format!("{v:.4}")));
    c
}

/// The summary as a markdown table.
pub fn markdown(summary: &[MethodSummary]) -> String {
    let h = header(summary);
    let mut out = format!("| {} |\n|{}\n", h.join(" | "), "---|".repeat(h.len()));
    for s in summary {
        out += &format!("| {} |\n", cells(s).join(" | "));
    }
    out
}

/// The summary as CSV, each mean's 95 % interval in two more columns per metric.
pub fn csv(summary: &[MethodSummary]) -> String {
    let mut h = header(summary);
    if let Some(first) = summary.first() {
        for i in &first.intervals {
            h.push(format!("{} 95% lo", i.metric));
            h.push(format!("{} 95% hi", i.metric));
        }
    }
    let mut out = h.join(",") + "\n";
    for s in summary {
        let mut c = cells(s);
        for i in &s.intervals {
            c.push(format!("{:.6}", i.lo));
            c.push(format!("{:.6}", i.hi));
        }
        out += &(c.join(",") + "\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(image: &str, class: &str, method: &str, ebpg: f64, hit: bool) -> Row {
        Row {
            image: image.into(),
            class: class.into(),
            target: 0,
            method: method.into(),
            ebpg,
            bbox: Some(0.5),
            drop: 0.25,
            increase: hit,
            deletion: 0.1,
            insertion: 0.9,
            pointing: Some(hit),
            ms: 10.0,
            extra: BTreeMap::new(),
            curves: BTreeMap::new(),
        }
    }

    #[test]
    fn order_independent_and_hand_computed() {
        let rows = vec![
            row("a", "cat", "igcam", 0.5, true),
            row("b", "cat", "igcam", 0.25, false),
            row("b", "dog", "igcam", 0.75, true),
            row("a", "cat", "gradcam", 0.1, false),
        ];
        let s = summarise(&rows);
        assert_eq!(s[0].method, "igcam");
        assert_eq!(s[0].n, 3);
        assert_eq!(s[0].ebpg, 50.0);
        assert!((s[0].increase - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(s[0].pointing, 75.0, "cat 1/2, dog 1/1");
        let mut reversed = rows.clone();
        reversed.reverse();
        reversed.swap(0, 1);
        let r = summarise(&reversed);
        assert_eq!(
            markdown(&s),
            markdown(&r),
            "row order does not change the table"
        );
        assert!(csv(&s).starts_with("method,n,EBPG %"));
    }
}
