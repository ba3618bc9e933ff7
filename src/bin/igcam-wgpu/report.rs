//! `eval --report` / `merge --report`: one self-contained HTML file (inline CSS and SVG, the
//! gallery's PNGs inline; no script, no network) with the summary and its intervals, a chart
//! per metric, the deletion and insertion curves per method (mean with a band of one standard
//! error), the paired comparisons, and the gallery. Its size is bounded: the charts grow with
//! methods and metrics, not images, and the gallery holds a few overlays per method.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use igcam::metrics::significance::{Comparison, Interval};
use igcam::metrics::summary::{MethodSummary, Row};
use igcam::metrics::table;

use crate::gallery::Gallery;
use crate::output;
use crate::results::Stats;

/// Colours of the methods' series, in order.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// `&`, `<`, `>` and `"` escaped for HTML text and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A finite number, or a dash.
fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// One metric's chart: a bar per method at its mean, with the 95 % interval as a whisker.
fn metric_chart(metric: &str, intervals: &[&Interval], methods: &[&str]) -> String {
    let (w, row_h, left, right) = (560.0, 26.0, 110.0, 70.0);
    let h = row_h * methods.len() as f64 + 30.0;
    let values: Vec<f64> = intervals
        .iter()
        .flat_map(|i| [i.mean, i.lo, i.hi])
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |v: f64| left + (v - lo) / span * (w - left - right);
    let direction = match table::info(metric) {
        Some(m) if m.higher_is_better => "higher is better",
        Some(_) => "lower is better",
        None => "",
    };
    let mut svg = format!(
        r#"<svg class="chart metric" data-metric="{m}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{m}</title><text x="0" y="14" class="t">{m} <tspan class="d">({direction}; 95 % interval)</tspan></text>"#,
        m = esc(metric)
    );
    for (k, method) in methods.iter().enumerate() {
        let Some(i) = intervals.iter().find(|i| i.method == *method) else {
            continue;
        };
        let y = 24.0 + row_h * k as f64;
        let colour = PALETTE[k % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}" class="l">{}</text>"#,
            y + 15.0,
            esc(method)
        );
        if i.mean.is_finite() {
            let (x0, x1) = (x(0.0_f64.max(lo)), x(i.mean));
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="16" fill="{colour}" opacity="0.75"/>"#,
                x0.min(x1),
                y + 3.0,
                (x1 - x0).abs().max(1.0)
            );
        }
        if i.lo.is_finite() && i.hi.is_finite() {
            let (a, b) = (x(i.lo), x(i.hi));
            let _ = write!(
                svg,
                r#"<path d="M{a:.1} {y1:.1}V{y2:.1}M{a:.1} {m:.1}H{b:.1}M{b:.1} {y1:.1}V{y2:.1}" stroke="rgb(34,34,34)" fill="none"/>"#,
                y1 = y + 5.0,
                y2 = y + 17.0,
                m = y + 11.0
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="v">{}</text>"#,
            w - right + 6.0,
            y + 15.0,
            num(i.mean, 3)
        );
    }
    svg + "</svg>"
}

/// Mean and standard error of each step of the curves named `name` of each method's rows.
fn curve_stats(rows: &[Row], name: &str, method: &str) -> Vec<(f64, f64)> {
    let curves: Vec<&Vec<f64>> = rows
        .iter()
        .filter(|r| r.method == method)
        .filter_map(|r| r.curves.get(name))
        .collect();
    let Some(len) = curves.iter().map(|c| c.len()).min() else {
        return Vec::new();
    };
    (0..len)
        .map(|s| {
            let v: Vec<f64> = curves
                .iter()
                .map(|c| c[s])
                .filter(|v| v.is_finite())
                .collect();
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            (mean, (var / n).sqrt())
        })
        .collect()
}

/// The curves the report draws: name, what a point is, what the first and last steps are
/// (empty: the number of layers).
const CURVES: [(&str, &str, &str, &str); 7] = [
    ("deletion", "confidence per step", "0", "all pixels"),
    ("insertion", "confidence per step", "0", "all pixels"),
    (
        "road_morf",
        "ROAD: confidence change, most relevant imputed",
        "first percentile",
        "last",
    ),
    (
        "road_lerf",
        "ROAD: confidence change, least relevant imputed",
        "first percentile",
        "last",
    ),
    (
        "road_accuracy",
        "ROAD (Quantus): still the top class, most relevant imputed",
        "first percentage",
        "last",
    ),
    (
        "mprt_spearman",
        "sanity check: Spearman to the map, layers randomised top down",
        "original",
        "",
    ),
    (
        "mprt_ssim",
        "sanity check: SSIM to the map, layers randomised top down",
        "original",
        "",
    ),
];

/// A curve chart: each method's mean per step with a band of one standard error.
fn curve_chart(
    rows: &[Row],
    (name, what, start, end): (&str, &str, &str, &str),
    methods: &[&str],
) -> String {
    let (w, h, left, bottom) = (560.0, 260.0, 44.0, 28.0);
    let series: Vec<Vec<(f64, f64)>> = methods.iter().map(|m| curve_stats(rows, name, m)).collect();
    let finite = || {
        series
            .iter()
            .flatten()
            .flat_map(|(m, e)| [m + e, m - e])
            .filter(|v| v.is_finite())
    };
    let top = finite().fold(0.0, f64::max).max(1e-9);
    let steps = series.iter().map(Vec::len).max().unwrap_or(0);
    let end = if end.is_empty() {
        format!("{} layers", steps.saturating_sub(1))
    } else {
        end.to_string()
    };
    // Similarities can be negative; confidences are not.
    let low = finite().fold(0.0, f64::min);
    let x = |s: usize, len: usize| left + s as f64 / (len.max(2) - 1) as f64 * (w - left - 10.0);
    let y = |v: f64| 20.0 + (top - v) / (top - low) * (h - 20.0 - bottom);
    let mut svg = format!(
        r#"<svg class="chart curve" data-curve="{name}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{name}</title><text x="0" y="14" class="t">{name} <tspan class="d">({what}; band: ± 1 standard error)</tspan></text><path d="M{left} 20V{b}H{r}" stroke="rgb(136,136,136)" fill="none"/><path d="M{left} {zero:.1}H{r}" stroke="rgb(200,200,200)" fill="none"/><text x="{left}" y="{ty}" class="d">{start}</text><text x="{r2}" y="{ty}" class="d">{end}</text><text x="2" y="26" class="d">{top:.2}</text><text x="2" y="{b}" class="d">{low:.2}</text>"#,
        b = h - bottom,
        r = w - 10.0,
        r2 = w - 70.0,
        ty = h - 8.0,
        zero = y(0.0)
    );
    for (k, s) in series.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        let colour = PALETTE[k % PALETTE.len()];
        let upper: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, (m, e))| format!("{:.1},{:.1}", x(i, s.len()), y(m + e)))
            .collect();
        let lower: Vec<String> = s
            .iter()
            .enumerate()
            .rev()
            .map(|(i, (m, e))| format!("{:.1},{:.1}", x(i, s.len()), y((m - e).max(low))))
            .collect();
        let line: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, (m, _))| format!("{:.1},{:.1}", x(i, s.len()), y(*m)))
            .collect();
        let _ = write!(
            svg,
            r#"<polygon points="{} {}" fill="{colour}" opacity="0.15"/><polyline points="{}" stroke="{colour}" stroke-width="2" fill="none"/><text x="{:.1}" y="{:.1}" fill="{colour}" class="l">{}</text>"#,
            upper.join(" "),
            lower.join(" "),
            line.join(" "),
            w - 150.0,
            40.0 + 16.0 * k as f64,
            esc(methods[k])
        );
    }
    svg + "</svg>"
}

/// Writes the report of `rows` to `path`.
pub fn write(
    path: &Path,
    rows: &[Row],
    stats: &Stats,
    summary: &[MethodSummary],
    comparisons: &[Comparison],
    gallery: &Gallery,
) -> Result<()> {
    let methods: Vec<&str> = summary.iter().map(|s| s.method.as_str()).collect();
    let mut by_metric: BTreeMap<&str, Vec<&Interval>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for s in summary {
        for i in &s.intervals {
            if !order.contains(&i.metric.as_str()) {
                order.push(&i.metric);
            }
            by_metric.entry(&i.metric).or_default().push(i);
        }
    }
    let mut html = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>igcam eval report</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fafafa;border:1px solid #ddd}
svg .t{font-weight:600;font-size:13px}svg .d{font-size:11px;fill:#666;font-weight:400}svg .l,svg .v{font-size:12px}
figure{display:inline-block;margin:4px;font-size:11px;text-align:center}figure img{display:block}
.better{color:#070;font-weight:600}
</style></head><body><h1>igcam eval report</h1>"#,
    );
    let _ = write!(
        html,
        "<p>{} images, {} explanations; {} images unreadable, {} annotations bad, {} objects skipped.{}</p>",
        stats.images,
        rows.len(),
        stats.failed_images.len(),
        stats.bad_annotations.len(),
        stats.skipped_objects.values().sum::<usize>(),
        if stats.seconds > 0.0 {
            format!(
                " Throughput: {:.3} images/s of machine time.",
                stats.images as f64 / stats.seconds
            )
        } else {
            String::new()
        }
    );
    html += "<h2>Summary</h2><p>Each mean with its 95 % bootstrap interval (2,000 resamples).</p><table id=\"summary\"><tr><th>method</th><th>n</th>";
    for m in &order {
        let _ = write!(html, "<th>{}</th>", esc(m));
    }
    html += "</tr>";
    for s in summary {
        let _ = write!(html, "<tr><td>{}</td><td>{}</td>", esc(&s.method), s.n);
        for m in &order {
            let cell = s
                .intervals
                .iter()
                .find(|i| i.metric == *m)
                .map_or("–".to_string(), |i| {
                    format!("{} [{}, {}]", num(i.mean, 3), num(i.lo, 3), num(i.hi, 3))
                });
            let _ = write!(html, "<td>{cell}</td>");
        }
        html += "</tr>";
    }
    html += "</table><h2>Metrics</h2><div class=\"charts\">";
    for m in &order {
        html += &metric_chart(m, &by_metric[m], &methods);
    }
    html += "</div><h2>Curves</h2><div class=\"charts\">";
    for curve in CURVES {
        if rows.iter().any(|r| r.curves.contains_key(curve.0)) {
            html += &curve_chart(rows, curve, &methods);
        }
    }
    html += "</div><h2>Paired comparisons</h2><p>Wilcoxon's signed-rank test on the same (image, class) pairs, Holm-corrected per metric; the better method where the corrected p &lt; 0.05.</p><table id=\"comparisons\"><tr><th>metric</th><th>methods</th><th>n</th><th>p</th><th>Holm p</th><th>better</th></tr>";
    for c in comparisons {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{} vs {}</td><td>{}</td><td>{:.2e}</td><td>{:.2e}</td><td class=\"better\">{}</td></tr>",
            esc(&c.metric),
            esc(&c.a),
            esc(&c.b),
            c.n,
            c.p,
            c.p_holm,
            esc(c.better.as_deref().unwrap_or(""))
        );
    }
    html += "</table><h2>Gallery</h2><p>Per method, the explanations with the highest and the lowest insertion AUC; the ground truth outlined in white.</p>";
    for method in &methods {
        let Some((best, worst)) = gallery.methods.get(*method) else {
            continue;
        };
        let _ = write!(html, "<h3>{}</h3>", esc(method));
        for (label, shots) in [("best", best), ("worst", worst)] {
            let _ = write!(
                html,
                "<div class=\"shots\" data-end=\"{label}\"><b>{label}</b><br>"
            );
            for s in shots {
                let _ = write!(
                    html,
                    "<figure><img alt=\"{} {}\" width=\"160\" src=\"data:image/png;base64,{}\"><figcaption>{} · {} · insertion {}</figcaption></figure>",
                    esc(&s.image),
                    esc(&s.class),
                    s.png,
                    esc(&s.image),
                    esc(&s.class),
                    num(s.insertion, 3)
                );
            }
            html += "</div>";
        }
    }
    html += "<p>Not in this report yet: MPRT's sanity plot (the metric is not implemented).</p></body></html>\n";
    output::write(path, html.as_bytes())
}
