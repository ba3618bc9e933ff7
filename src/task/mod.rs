//! What a model's output means and what explaining one of its targets takes the gradient of:
//! a classifier's class logits, a segmenter's class scores over a region ([`segment`]), or a
//! detector's kept detections, each its confidence at its anchor ([`detect`]).

pub mod detect;
pub mod segment;

use crate::error::{Error, Message, Result, Setting};
use crate::onnx::OnnxModel;
use crate::preprocess::Preset;

/// What a model does, read off its output's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// `[N, classes]` (or `[N, classes, 1, 1]`): one score per class.
    Classify,
    /// `[N, classes, H, W]`: a score per class and pixel, each class explained over its region.
    Segment,
    /// `[N, 4 + classes, anchors]` or `[N, anchors, 5 + classes]`: a YOLO head's boxes and
    /// scores (then any values that are not class scores: masks, keypoints), each kept
    /// detection explained at its anchor.
    Detect,
}

impl Task {
    /// The task of `model`'s output, and why, in words.
    pub fn of(model: &OnnxModel) -> (Task, String) {
        let (output, _) = model.outputs();
        let classes = model.num_classes();
        let [h, w] = model.output_plane();
        if let Some(d) = model.detector() {
            let head = match (model.metadata().extra_values(), &model.metadata().task) {
                (Some(what), Some(task)) if d.extra > 0 => format!(
                    "; an Ultralytics `{task}` model, explained through its boxes (its {what} are left out)"
                ),
                _ => String::new(),
            };
            (
                Task::Detect,
                format!("output `{output}` {}{head}", d.describe()),
            )
        } else if model.is_segmenter() {
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

    /// The labels `model` comes with: the class names its file holds (an Ultralytics or
    /// `yolov5` export's `names`, one per class), or, failing that, those its class count gives
    /// away: ImageNet's for 1000 classes, torchvision's 21-class segmenters (Pascal VOC's 20
    /// classes after the background) and 80-class YOLO detectors (COCO's, as ultralytics and
    /// yolov5 order them).
    pub fn model_labels(model: &OnnxModel) -> Option<Vec<String>> {
        if let Some(names) = &model.metadata().names
            && names.len() == model.num_classes()
        {
            return Some(names.clone());
        }
        match (Task::of(model).0, model.num_classes()) {
            (_, 1000) => Some(crate::data::imagenet_labels()),
            (Task::Segment, 21) => Some(crate::data::voc_segmentation_labels()),
            (Task::Detect, 80) => Some(crate::data::coco_detection_labels()),
            _ => None,
        }
    }

    /// How `model` wants its photos: a YOLO detector takes RGB / 255 (ultralytics' and yolov5's
    /// own preprocessing), every other model torchvision's ImageNet normalisation.
    pub fn default_preset(model: &OnnxModel) -> Preset {
        match model.detector() {
            Some(_) => Preset::Raw01,
            None => Preset::Imagenet,
        }
    }

    /// Its name: `classify`, `segment`, `detect`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Segment => "segment",
            Task::Detect => "detect",
        }
    }

    /// `auto` (`None`), `classify`, `segment` or `detect`.
    pub fn parse(name: &str) -> Result<Option<Task>> {
        match name {
            "auto" => Ok(None),
            "classify" => Ok(Some(Task::Classify)),
            "segment" => Ok(Some(Task::Segment)),
            "detect" => Ok(Some(Task::Detect)),
            other => Err(Error::InvalidOption(Message::from(format!(
                "unknown task `{other}` (auto, classify, segment, detect)"
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
