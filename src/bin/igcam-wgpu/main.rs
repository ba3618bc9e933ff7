//! `igcam-wgpu`: explain what an ONNX CNN sees, with Integrated Grad-CAM and friends.

mod assets;
mod backend;
mod bench;
mod eval;
mod explain;
mod layers;
mod merge;
mod output;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Integrated Grad-CAM (and Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, Integrated Gradients)
/// for any ONNX image classifier, on the GPU through wgpu or on the CPU.
#[derive(Parser)]
#[command(name = "igcam-wgpu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain images (default: the bundled cat photo with the embedded EfficientNet-Lite0).
    Explain(Box<explain::ExplainArgs>),
    /// List the tensors of a model that can be explained (4-D, spatial size > 1).
    Layers(layers::LayersArgs),
    /// Score methods with the paper's metrics on a PASCAL-VOC-layout dataset.
    Eval(Box<eval::EvalArgs>),
    /// Combine the output folders of sharded `eval` runs.
    Merge(merge::MergeArgs),
    /// Time methods on one backend (warm-up, then synchronised repetitions).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // Panics inside the engine are turned into errors; keep the default hook's backtrace text
    // off the terminal unless asked for.
    if std::env::var_os("IGCAM_DEBUG").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let cli = Cli::parse();
    let result = catch_unwind(AssertUnwindSafe(|| match cli.command {
        Command::Explain(args) => explain::run(*args),
        Command::Layers(args) => layers::run(args),
        Command::Eval(args) => eval::run(*args),
        Command::Merge(args) => merge::run(args),
        Command::Bench(args) => bench::run(args),
    }));
    let error = match result {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(e)) => format!("{e:#}"),
        Err(p) => format!(
            "internal error: {} (rerun with IGCAM_DEBUG=1 and report it)",
            igcam::onnx::panic_message(p.as_ref())
        ),
    };
    eprintln!("error: {}", error.replace('\n', " "));
    ExitCode::from(2)
}
