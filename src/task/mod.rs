//! What a model's output means and what explaining one of its targets takes the gradient of:
//! a classifier's class logits, or a segmenter's class scores over a region ([`segment`]).

pub mod segment;

use crate::error::{Error, Message, Result, Setting};
use crate::onnx::OnnxModel;

/// What a model does, read off its output's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// `[N, classes]` (or `[N, classes, 1, 1]`): one score per class.
    Classify,
    /// `[N, classes, H, W]`: a score per class and pixel, each class explained over its region.
    Segment,
}

impl Task {
    /// The task of `model`'s output, and why, in words.
    pub fn of(model: &OnnxModel) -> (Task, String) {
        let (output, _) = model.outputs();
        let classes = model.num_classes();
        let [h, w] = model.output_plane();
        if model.is_segmenter() {
            (
                Task::Segment,
                format!(
                    "output `{output}` [N, {classes}, {h}, {w}] scores each of {classes} classes at every pixel"
                ),
            )
        } else {
            (
                Task::Classify,
                format!("output `{output}` scores {classes} classes"),
            )
        }
    }

    /// Its name: `classify`, `segment`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Segment => "segment",
        }
    }

    /// `auto` (`None`), `classify` or `segment`.
    pub fn parse(name: &str) -> Result<Option<Task>> {
        match name {
            "auto" => Ok(None),
            "classify" => Ok(Some(Task::Classify)),
            "segment" => Ok(Some(Task::Segment)),
            other => Err(Error::InvalidOption(Message::from(format!(
                "unknown task `{other}` (auto, classify, segment)"
            )))),
        }
    }

    /// Refuses `model` (called `name`) when it is not `wanted` (`None`: anything goes).
    pub fn expect(model: &OnnxModel, name: &str, wanted: Option<Task>) -> Result<Task> {
        let (found, why) = Task::of(model);
        match wanted {
            Some(w) if w != found => Err(Error::InvalidOption(
                Message::from(format!("`{name}` is not a model to {}: {why}; ", w.name()))
                    .set(Setting::Task)
                    .text(format!(" {} (or auto)", found.name())),
            )),
            _ => Ok(found),
        }
    }
}
