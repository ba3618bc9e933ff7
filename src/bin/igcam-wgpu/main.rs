//! `igcam-wgpu`: explain what an ONNX CNN sees, with Integrated Grad-CAM and friends.

mod args;
mod assets;
mod backend;
mod bench;
mod clock;
mod dataset;
mod eval;
mod explain;
mod gallery;
mod layers;
mod merge;
mod metric_args;
mod output;
mod panics;
mod peak;
mod report;
mod results;
mod shard;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use igcam::error::{Setting, Spelling};

#[global_allocator]
static ALLOCATOR: igcam::allocator::MiMalloc = igcam::allocator::MiMalloc;

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
    #[command(mut_arg("methods", |a| a.default_value("igcam,gradcam,gradcampp")))]
    Eval(Box<eval::EvalArgs>),
    /// Combine the output folders of sharded `eval` runs.
    Merge(merge::MergeArgs),
    /// Time methods on one backend (warm-up, then synchronised repetitions).
    #[command(mut_arg("methods", |a| a.default_value("igcam,gradcam")))]
    Bench(Box<bench::BenchArgs>),
}

/// Prints a clap error as one line (the problem, the accepted values, where to read more) and
/// returns exit code 2; `--help` and `--version` print as usual and succeed.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!("error: {}", one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// clap's multi-line message as one line: the message, then any `[possible values: ...]` or
/// `tip:` line, then a pointer to `--help`.
fn one_line(text: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = line.trim_start_matches('[').trim_end_matches(']');
        parts.push(line.to_string());
    }
    parts.push("see --help".into());
    parts.join("; ")
}

/// The command line's words for the library's settings: its flags.
struct CliSpelling;

impl Spelling for CliSpelling {
    fn name(&self, setting: Setting) -> String {
        match setting {
            Setting::Steps => "--steps",
            Setting::Batch => "--batch",
            Setting::Force => "--force",
            Setting::Layer => "--layer",
            Setting::LayerList => "`igcam-wgpu layers MODEL.onnx`",
            Setting::Target => "--target",
            Setting::MaxPixels => "--max-pixels",
            Setting::NoCrop => "--no-crop",
            Setting::Lenient => "--lenient",
            Setting::NtSamples => "--nt-samples",
            Setting::NtStdev => "--nt-stdev",
            Setting::Metrics => "--metrics",
            Setting::Task => "--task",
            Setting::Conf => "--conf",
            Setting::Iou => "--iou",
            Setting::MaxDet => "--max-det",
        }
        .to_string()
    }

    fn set(&self, setting: Setting) -> String {
        format!("pass {}", self.name(setting))
    }
}

/// An error and its causes on one line, as anyhow's `{:#}` writes them, with the library's
/// errors worded for the command line.
fn render(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| match cause.downcast_ref::<igcam::Error>() {
            Some(e) => e.render(&CliSpelling),
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

fn main() -> ExitCode {
    igcam::allocator::retain_freed_memory();
    if let Some(code) = backend::list_adapters_if_asked() {
        return code;
    }
    // Panics inside the engine are turned into errors; keep the default hook's backtrace text
    // off the terminal unless asked for.
    if std::env::var_os("IGCAM_DEBUG").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = catch_unwind(AssertUnwindSafe(|| match cli.command {
        Command::Explain(args) => explain::run(*args),
        Command::Layers(args) => layers::run(args),
        Command::Eval(args) => eval::run(*args),
        Command::Merge(args) => merge::run(args),
        Command::Bench(args) => bench::run(*args),
    }));
    let error = match result {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(e)) => render(&e),
        Err(p) => format!(
            "internal error: {} (rerun with IGCAM_DEBUG=1 and report it)",
            panics::panic_message(p.as_ref())
        ),
    };
    eprintln!("error: {}", error.replace('\n', " "));
    ExitCode::from(2)
}
