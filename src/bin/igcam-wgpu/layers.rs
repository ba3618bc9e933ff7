//! `igcam-wgpu layers MODEL.onnx`: the tensors that can be explained, with their shapes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::args::OutputArgs;
use crate::backend::{self, BackendChoice};
use crate::output::load_model;

/// Arguments of `layers`.
#[derive(Args)]
pub struct LayersArgs {
    /// ONNX model (default: the embedded EfficientNet-Lite0).
    model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// Lists candidate layers; the default one is marked.
pub fn run(args: LayersArgs) -> Result<()> {
    let backend = backend::open(BackendChoice::Cpu);
    let (model, _, _) = load_model(args.model.as_deref(), &args.output, &backend.device)?;
    let layers = model.layers();
    let reason = model.default_layers_reason();
    let defaults = reason.as_ref().map_or(&[][..], |(names, _)| &names[..]);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&layers)?);
        return Ok(());
    }
    let width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<18}  {:<20}  {:<20}  default",
        "name", "op", "shape", "explained as"
    );
    for l in &layers {
        let mark = if defaults.contains(&l.name) { "*" } else { "" };
        // Transformer tokens are explained as the grid of their patch tokens.
        let grid = if l.explained_as == l.shape {
            String::new()
        } else {
            format!("{:?}", l.explained_as)
        };
        println!(
            "{:<width$}  {:<18}  {:<20}  {grid:<20}  {mark}",
            l.name,
            l.op_type,
            format!("{:?}", l.shape)
        );
    }
    if let Some((names, why)) = &reason {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        println!("\ndefault (*): {}, {why}", names.join(", "));
    }
    Ok(())
}
