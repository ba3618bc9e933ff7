//! An `eval` output folder: `rows.jsonl` (appended an image at a time), `stats.json` and
//! `summary.csv`; read back by `--resume` and by `merge`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use igcam::metrics::significance::{self, Comparison, Interval};
use igcam::metrics::summary::{self, Row};
use serde::{Deserialize, Serialize};

use crate::gallery::Gallery;
use crate::output;

/// What an evaluation run saw besides its rows; summed by `merge`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Images evaluated.
    pub images: usize,
    /// Images that could not be read or decoded, with the reason.
    pub failed_images: Vec<String>,
    /// Annotations that could not be read or parsed, with the reason.
    pub bad_annotations: Vec<String>,
    /// Objects whose class has no entry in the class map (per class: count).
    pub skipped_objects: std::collections::BTreeMap<String, usize>,
    /// Ids of the images finished so far (scored, or without a mapped class), for `--resume`.
    #[serde(default)]
    pub done: Vec<String>,
    /// Seconds spent reading, explaining and scoring images (summed over resumed runs, and
    /// over shards by `merge`: machine time).
    #[serde(default)]
    pub seconds: f64,
    /// The settings the rows were scored with: the metrics'
    /// ([`igcam::scoring::ScoreOptions::describe`]), the model, its layer, the explainer's
    /// options and the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    /// Each method's mean of each metric with its 95 % bootstrap interval (written with the
    /// summary; recomputed from the rows, never read back).
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<Interval>,
    /// Paired Wilcoxon tests between methods, Holm-corrected per metric (likewise).
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
}

impl Stats {
    /// Adds another shard's counts; fails on a count that overflows.
    pub fn add(&mut self, other: Stats) -> Result<()> {
        let overflow = || anyhow::anyhow!("the image counts overflow; are these eval folders?");
        self.images = self.images.checked_add(other.images).ok_or_else(overflow)?;
        self.failed_images.extend(other.failed_images);
        self.bad_annotations.extend(other.bad_annotations);
        for (k, v) in other.skipped_objects {
            let n = self.skipped_objects.entry(k).or_default();
            *n = n.checked_add(v).ok_or_else(overflow)?;
        }
        self.done.extend(other.done);
        self.seconds += other.seconds;
        match (&self.settings, other.settings) {
            (Some(a), Some(b)) if *a != b => bail!(
                "the shards were scored with different settings (`{a}` and `{b}`): merge the shards of one run"
            ),
            (None, b) => self.settings = b,
            _ => {}
        }
        Ok(())
    }
}

/// Rows as JSON lines.
pub fn jsonl(rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    for r in rows {
        out += &(serde_json::to_string(r)? + "\n");
    }
    Ok(out)
}

/// Reads `rows.jsonl`; `null` metrics (NaN when written) read back as NaN. With `partial_tail`,
/// a last line cut short (a run killed while writing it) is dropped; returns the rows and the
/// byte length of the complete lines.
pub fn read_rows(path: &Path, partial_tail: bool) -> Result<(Vec<Row>, usize)> {
    let text = output::read_text(path)?;
    let mut rows = Vec::new();
    let mut complete = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let last = n + 1 == lines.len();
        if line.trim().is_empty() {
            complete += line.len();
            continue;
        }
        match serde_json::from_str::<Row>(line) {
            Ok(r) => rows.push(r),
            Err(_) if partial_tail && last && !line.ends_with('\n') => break,
            Err(e) => bail!("`{}` line {}: {e}", path.display(), n + 1),
        }
        complete += line.len();
    }
    Ok((rows, complete))
}

/// Images in PASCAL VOC 2007's test split (the projection `report` prints).
const VOC07_TEST_IMAGES: usize = 4952;

/// Writes stats and the summary CSV into `dir` (rows.jsonl is already there), and prints the
/// table and the counts.
/// With `html`, also the HTML report at that path, with that gallery.
pub fn report(
    dir: &Path,
    rows: &[Row],
    stats: &Stats,
    html: Option<(&Path, &Gallery)>,
) -> Result<()> {
    let table = summary::summarise(rows);
    let comparisons = significance::comparisons(rows);
    write_stats(
        dir,
        &Stats {
            intervals: table.iter().flat_map(|s| s.intervals.clone()).collect(),
            comparisons: comparisons.clone(),
            ..stats.clone()
        },
    )?;
    output::write(&dir.join("summary.csv"), summary::csv(&table).as_bytes())?;
    if let Some((path, gallery)) = html {
        crate::report::write(path, rows, stats, &table, &comparisons, gallery)?;
    }
    print!("{}", summary::markdown(&table));
    let better: Vec<String> = comparisons
        .iter()
        .filter_map(|c| {
            let winner = c.better.as_ref()?;
            let loser = if *winner == c.a { &c.b } else { &c.a };
            Some(format!(
                "  {}: {winner} better than {loser} (Wilcoxon, n = {}, p = {:.2e}, Holm {:.2e})",
                c.metric, c.n, c.p, c.p_holm
            ))
        })
        .collect();
    if !comparisons.is_empty() {
        println!(
            "\n{} of {} paired comparisons significant at {} after Holm's correction{}",
            better.len(),
            comparisons.len(),
            significance::ALPHA,
            if better.is_empty() { "" } else { ":" }
        );
        for line in &better {
            println!("{line}");
        }
    }
    let skipped: usize = stats.skipped_objects.values().sum();
    println!(
        "\n{} images, {} explanations; {} images unreadable, {} annotations bad, {} objects skipped (no class-map entry: {})",
        stats.images,
        rows.len(),
        stats.failed_images.len(),
        stats.bad_annotations.len(),
        skipped,
        stats
            .skipped_objects
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for f in stats.failed_images.iter().chain(&stats.bad_annotations) {
        println!("  skipped: {f}");
    }
    if stats.seconds > 0.0 && stats.images > 0 {
        let per_s = stats.images as f64 / stats.seconds;
        let voc07 = VOC07_TEST_IMAGES as f64 / per_s / 3600.0;
        println!(
            "throughput: {per_s:.3} images/s, {:.3} explanations/s ({} images in {:.1} s of machine time); VOC07 test's {VOC07_TEST_IMAGES} images would take about {voc07:.1} h on one machine like this, {:.2} h on 10 with --shard",
            rows.len() as f64 / stats.seconds,
            stats.images,
            stats.seconds,
            voc07 / 10.0
        );
    }
    let nan = summary::nan_metrics(rows);
    if nan > 0 {
        println!("{nan} metric values are NaN (null in rows.jsonl) and left out of the means");
    }
    println!(
        "wrote {}",
        dir.join("{rows.jsonl, stats.json, summary.csv}").display()
    );
    Ok(())
}

/// Writes `dir/stats.json` (atomically).
pub fn write_stats(dir: &Path, stats: &Stats) -> Result<()> {
    output::write(
        &dir.join("stats.json"),
        serde_json::to_string_pretty(stats)?.as_bytes(),
    )
}

/// `rows.jsonl`, appended an image at a time as images are scored, so an interrupted or
/// failed run keeps what it finished.
pub struct RowsFile {
    /// The file's path.
    pub path: PathBuf,
    file: fs::File,
}

impl RowsFile {
    /// Opens `dir/rows.jsonl`: with `resume`, the rows already there (a cut-short last line is
    /// cut off) and the stats of that run; otherwise a new file, refusing to overwrite results.
    pub fn open(dir: &Path, resume: bool) -> Result<(Self, Vec<Row>, Stats)> {
        let path = dir.join("rows.jsonl");
        let exists = fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        let (rows, mut stats) = if exists && resume {
            let (rows, complete) = read_rows(&path, true)?;
            let file = fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(complete as u64)?;
            let stats_path = dir.join("stats.json");
            let stats: Stats = if stats_path.is_file() {
                serde_json::from_slice(&output::read(&stats_path)?).with_context(|| {
                    format!("`{}` is not an eval stats file", stats_path.display())
                })?
            } else {
                Stats::default()
            };
            (rows, stats)
        } else if exists {
            bail!(
                "`{}` already holds results; pass --resume to continue that run, or pick another --out",
                path.display()
            );
        } else {
            (Vec::new(), Stats::default())
        };
        // Failures are tried again; images with rows count as done even when the stats were
        // not written after them.
        stats.failed_images.clear();
        stats.bad_annotations.clear();
        for r in &rows {
            if !stats.done.contains(&r.image) {
                stats.done.push(r.image.clone());
            }
        }
        stats.images = stats.done.len();
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok((Self { path, file }, rows, stats))
    }

    /// Appends one image's rows and flushes them to the file.
    pub fn append(&mut self, rows: &[Row]) -> Result<()> {
        use std::io::Write;
        self.file
            .write_all(jsonl(rows)?.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write `{}`", self.path.display()))
    }
}
