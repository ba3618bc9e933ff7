//! `igcam-wgpu merge`: combine the output folders of sharded `eval` runs into one table.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use igcam::metrics::summary::Row;

use crate::gallery::Gallery;
use crate::output;
use crate::results::{Stats, jsonl, read_rows, report};

/// Arguments of `merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// `eval --out` folders of the shards.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Where to write the merged rows.jsonl, stats.json and summary.csv.
    #[arg(long, default_value = "igcam-eval")]
    out: PathBuf,
    /// Also write the HTML report of the merged rows (the gallery picked from the shards' own,
    /// from their `eval --report` runs).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Runs `merge`.
pub fn run(args: MergeArgs) -> Result<()> {
    let mut rows: Vec<Row> = Vec::new();
    let mut stats = Stats::default();
    let mut gallery = Gallery::default();
    for dir in &args.shards {
        let jsonl = dir.join("rows.jsonl");
        if !jsonl.exists() {
            bail!(
                "cannot read `{}`: is it an `eval --out` folder?",
                jsonl.display()
            );
        }
        rows.extend(read_rows(&jsonl, false)?.0);
        let s: Stats = serde_json::from_slice(&output::read(&dir.join("stats.json"))?)
            .with_context(|| {
                format!(
                    "`{}` is not an eval stats file",
                    dir.join("stats.json").display()
                )
            })?;
        stats.add(s)?;
        if args.report.is_some() {
            gallery.absorb(Gallery::load(dir)?);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        if !seen.insert((&r.image, &r.class, &r.method)) {
            bail!(
                "image `{}` class `{}` method `{}` appears in two shards; merge each shard once",
                r.image,
                r.class,
                r.method
            );
        }
    }
    output::prepare_dir(&args.out)?;
    output::write(&args.out.join("rows.jsonl"), jsonl(&rows)?.as_bytes())?;
    if args.report.is_some() {
        gallery.save(&args.out)?;
    }
    report(
        &args.out,
        &rows,
        &stats,
        args.report.as_deref().map(|p| (p, &gallery)),
    )
}
