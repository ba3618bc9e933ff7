//! Object detection with single-shot YOLO heads exported without NMS. The output scores every
//! anchor: a box (`x, y, w, h`, its centre and size in input pixels) and per-class scores, in
//! one of two layouts ([`DetectLayout`]). Boxes are kept as the exporters' own
//! post-processing keeps them (a confidence threshold, then per-class NMS: ultralytics'
//! `non_max_suppression`, and the `yolov5` package's for its layout), and each kept detection
//! is explained through its confidence at its anchor ([`Detection::objective`]).

use crate::error::{Error, Message, Result, Setting};
use crate::onnx::objective::Objective;

/// How a detector's output `[1, a, b]` holds its anchors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectLayout {
    /// Anchors (box predictions) per image.
    pub anchors: usize,
    /// Classes.
    pub classes: usize,
    /// The classic YOLOv5 layout `[1, anchors, 5 + classes]`: anchor-major, with an objectness
    /// after the box; otherwise ultralytics' (v8, 11) `[1, 4 + classes, anchors]`:
    /// attribute-major, no objectness.
    pub objectness: bool,
    /// Values per anchor after the class scores, which igcam does not explain: an
    /// instance-segmentation head's mask coefficients, a pose head's keypoints (0 for a plain
    /// detection head).
    pub extra: usize,
}

impl DetectLayout {
    /// The layout of an output of batch-1 `shape` for an input of `[height, width]`: `[1, 4 + C,
    /// A]` is ultralytics' when `A` is one anchor per cell of the stride 8, 16 and 32 grids;
    /// `[1, A, 5 + C]` YOLOv5's when `A` is three per cell; at least one class. Any other
    /// rank-3 output (a transposed export, an end-to-end `[1, 300, 6]`, a transformer's hidden
    /// states) is not taken for a detector. `classes`, where the file names its classes, is
    /// their count: the values after them are `extra` (masks, keypoints); a count the output
    /// cannot hold is ignored.
    pub fn of(
        shape: &[usize],
        [height, width]: [usize; 2],
        classes: Option<usize>,
    ) -> Option<Self> {
        let cells: usize = [8, 16, 32]
            .iter()
            .map(|s| height.div_ceil(*s) * width.div_ceil(*s))
            .sum();
        let (anchors, scores, objectness) = match *shape {
            [1, a, b] if a > 4 && b == cells => (b, a - 4, false),
            [1, a, b] if b > 5 && a == 3 * cells => (a, b - 5, true),
            _ => return None,
        };
        let classes = classes
            .filter(|c| (1..=scores).contains(c))
            .unwrap_or(scores);
        Some(Self {
            anchors,
            classes,
            objectness,
            extra: scores - classes,
        })
    }

    /// Attributes per anchor: the box, the objectness where there is one, the classes, the
    /// extra values.
    fn attributes(&self) -> usize {
        4 + usize::from(self.objectness) + self.classes + self.extra
    }

    /// The index in one image's output of `anchor`'s attribute `attribute`.
    fn at(&self, anchor: usize, attribute: usize) -> usize {
        if self.objectness {
            anchor * self.attributes() + attribute
        } else {
            attribute * self.anchors + anchor
        }
    }

    /// The index of `anchor`'s score of `class`.
    pub fn class_index(&self, anchor: usize, class: usize) -> usize {
        self.at(anchor, 4 + usize::from(self.objectness) + class)
    }

    /// The index of `anchor`'s objectness (YOLOv5's layout only).
    pub fn objectness_index(&self, anchor: usize) -> Option<usize> {
        self.objectness.then(|| self.at(anchor, 4))
    }

    /// The default NMS IoU threshold: ultralytics' `predict` 0.7, the `yolov5` package's 0.45.
    pub fn default_iou(&self) -> f32 {
        if self.objectness { 0.45 } else { 0.7 }
    }

    /// In words, for `layers` and notices.
    pub fn describe(&self) -> String {
        let (shape, objectness, family) = if self.objectness {
            (
                format!("[N, {}, {}]", self.anchors, self.attributes()),
                ", an objectness",
                "YOLOv5's layout",
            )
        } else {
            (
                format!("[N, {}, {}]", self.attributes(), self.anchors),
                "",
                "ultralytics YOLOv8/11's layout",
            )
        };
        let extra = match self.extra {
            0 => String::new(),
            n => format!(", then {n} values not explained"),
        };
        let scores = if self.classes == 1 { "score" } else { "scores" };
        format!(
            "{shape}: {} anchors, each a box (x, y, w, h){objectness} and {} class {scores}{extra} ({family})",
            self.anchors, self.classes
        )
    }

    /// The detections kept from one image's raw `output` (see the module doc): anchors whose
    /// best confidence exceeds `conf` (YOLOv5: whose objectness does, the confidence being
    /// objectness × class score), best first, with per-class NMS at `iou` (a box goes when
    /// its IoU with a better one of its class exceeds it), at most `max_det`.
    pub fn detect(&self, output: &[f32], options: &DetectOptions) -> Vec<Detection> {
        let iou = options.iou.unwrap_or_else(|| self.default_iou());
        let mut candidates: Vec<Detection> = (0..self.anchors)
            .filter_map(|a| {
                let objectness = self.objectness_index(a).map_or(1.0, |i| output[i]);
                if self.objectness && objectness <= options.conf {
                    return None;
                }
                // The best class, the first on ties (torch's `max`).
                let (class, score) = (0..self.classes)
                    .map(|c| (c, output[self.class_index(a, c)] * objectness))
                    .fold((0, f32::NEG_INFINITY), |best, (c, s)| {
                        if s > best.1 { (c, s) } else { best }
                    });
                let [x, y, w, h] = [0, 1, 2, 3].map(|k| output[self.at(a, k)]);
                (score > options.conf).then_some(Detection {
                    anchor: a,
                    class,
                    score,
                    bbox: [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0],
                })
            })
            .collect();
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.anchor.cmp(&b.anchor)));
        candidates.truncate(MAX_NMS);
        let mut kept: Vec<Detection> = Vec::new();
        for d in candidates {
            if kept.len() == options.max_det {
                break;
            }
            if kept.iter().all(|k| offset_iou(k, &d) <= iou) {
                kept.push(d);
            }
        }
        kept
    }
}

/// Boxes NMS looks at, the best first (ultralytics' and yolov5's `max_nms`).
const MAX_NMS: usize = 30_000;

/// How far apart NMS moves each class's boxes so that classes never overlap (ultralytics'
/// and yolov5's `max_wh`).
const CLASS_OFFSET: f32 = 7680.0;

/// IoU of two detections as the reference NMS computes it: each box moved by its class times
/// [`CLASS_OFFSET`] (0 between classes), in f32.
fn offset_iou(a: &Detection, b: &Detection) -> f32 {
    let shift = |d: &Detection| d.bbox.map(|v| v + d.class as f32 * CLASS_OFFSET);
    let (a, b) = (shift(a), shift(b));
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    if inter == 0.0 {
        return 0.0;
    }
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// The post-processing thresholds (ultralytics' `predict` defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectOptions {
    /// Confidence threshold (a detection needs more).
    pub conf: f32,
    /// NMS IoU threshold; `None`: the layout's default ([`DetectLayout::default_iou`]).
    pub iou: Option<f32>,
    /// Most detections kept per image.
    pub max_det: usize,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: None,
            max_det: 300,
        }
    }
}

impl DetectOptions {
    /// Refuses thresholds outside `0..=1` and `max_det` 0 (a detector's; others ignore them).
    pub fn check(&self) -> Result<()> {
        let unit = |setting: Setting, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::InvalidOption(Message::setting(setting).text(
                    format!(" {v} is outside 0..=1: give a threshold between 0 and 1"),
                )))
            }
        };
        unit(Setting::Conf, self.conf)?;
        if let Some(iou) = self.iou {
            unit(Setting::Iou, iou)?;
        }
        if self.max_det == 0 {
            return Err(Error::InvalidOption(
                Message::setting(Setting::MaxDet).text(" must be at least 1"),
            ));
        }
        Ok(())
    }
}

/// One kept detection.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Detection {
    /// The anchor it was read from (its index along the output's anchor axis).
    pub anchor: usize,
    /// Its class.
    pub class: usize,
    /// Its confidence: the class score (YOLOv5: objectness × class score).
    pub score: f32,
    /// Its box `[x0, y0, x1, y1]` in model-input pixels.
    pub bbox: [f32; 4],
}

impl Detection {
    /// What explaining it takes the gradient of: its confidence at its anchor, the class
    /// score the NMS ranked it by (YOLOv5: objectness × class score). pytorch-grad-cam's YOLO
    /// examples and its `FasterRCNNBoxScoreTarget` sum such scores over the predictions that
    /// match the box; one anchor's score is the detection itself, and needs no matching.
    pub fn objective(&self, layout: &DetectLayout) -> Objective {
        Objective::Detection {
            index: layout.class_index(self.anchor, self.class),
            objectness: layout.objectness_index(self.anchor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ultralytics-layout output for `boxes` (`[x, y, w, h]`) and their class `scores`.
    fn v8_output(boxes: &[[f32; 4]], scores: &[&[f32]]) -> Vec<f32> {
        let classes = scores[0].len();
        let mut out = vec![0.0; (4 + classes) * boxes.len()];
        for (a, (b, s)) in boxes.iter().zip(scores).enumerate() {
            for (k, v) in b.iter().chain(s.iter()).enumerate() {
                out[k * boxes.len() + a] = *v;
            }
        }
        out
    }

    #[test]
    fn layouts_follow_the_output_shape() {
        let v8 = DetectLayout::of(&[1, 84, 8400], [640, 640], None).unwrap();
        assert_eq!((v8.anchors, v8.classes, v8.objectness), (8400, 80, false));
        assert_eq!(v8.class_index(3, 2), 6 * 8400 + 3);
        assert_eq!(v8.objectness_index(3), None);
        let v5 = DetectLayout::of(&[1, 25200, 85], [640, 640], None).unwrap();
        assert_eq!((v5.anchors, v5.classes, v5.objectness), (25200, 80, true));
        assert_eq!(v5.class_index(3, 2), 3 * 85 + 7);
        assert_eq!(v5.objectness_index(3), Some(3 * 85 + 4));
        // 128x128: 16² + 8² + 4² = 336 cells.
        assert!(DetectLayout::of(&[1, 7, 336], [128, 128], None).is_some());
        assert_eq!(DetectLayout::of(&[1, 7, 336], [160, 160], None), None);
        assert_eq!(DetectLayout::of(&[1, 4, 8400], [640, 640], None), None);
        assert_eq!(DetectLayout::of(&[1, 25200, 5], [640, 640], None), None);
        // Transposed ultralytics, end-to-end, a ViT's hidden states: not detectors.
        assert_eq!(DetectLayout::of(&[1, 8400, 84], [640, 640], None), None);
        assert_eq!(DetectLayout::of(&[1, 300, 6], [640, 640], None), None);
        assert_eq!(DetectLayout::of(&[1, 197, 768], [224, 224], None), None);
        assert_eq!(DetectLayout::of(&[1, 10], [640, 640], None), None);
        assert_eq!(DetectLayout::of(&[2, 84, 8400], [640, 640], None), None);
    }

    #[test]
    fn named_classes_leave_the_rest_of_each_anchor_out() {
        // An ultralytics instance-segmentation head (3 classes, 32 mask coefficients) and a
        // pose head (1 class, 17 keypoints x 3).
        let seg = DetectLayout::of(&[1, 39, 336], [128, 128], Some(3)).unwrap();
        assert_eq!((seg.classes, seg.extra), (3, 32));
        assert_eq!(seg.class_index(5, 2), 6 * 336 + 5);
        assert_eq!(
            seg.describe(),
            "[N, 39, 336]: 336 anchors, each a box (x, y, w, h) and 3 class scores, then 32 values not explained (ultralytics YOLOv8/11's layout)"
        );
        let pose = DetectLayout::of(&[1, 56, 8400], [640, 640], Some(1)).unwrap();
        assert_eq!((pose.classes, pose.extra), (1, 51));
        let v5 = DetectLayout::of(&[1, 25200, 117], [640, 640], Some(80)).unwrap();
        assert_eq!((v5.classes, v5.extra), (80, 32));
        assert_eq!(v5.class_index(1, 0), 117 + 5);
        // A count the output cannot hold is ignored.
        let odd = DetectLayout::of(&[1, 7, 336], [128, 128], Some(9)).unwrap();
        assert_eq!((odd.classes, odd.extra), (3, 0));
    }

    #[test]
    fn nms_keeps_the_best_box_per_class_and_overlap() {
        // Anchors 0 and 1 overlap (IoU 0.81) in class 0; anchor 2 overlaps 0 as well but is
        // class 1; anchor 3 is below the threshold.
        let boxes = [
            [50.0, 50.0, 20.0, 20.0],
            [51.0, 51.0, 20.0, 20.0],
            [50.0, 50.0, 20.0, 20.0],
            [10.0, 10.0, 4.0, 4.0],
        ];
        let out = v8_output(
            &boxes,
            &[&[0.8, 0.1], &[0.9, 0.2], &[0.1, 0.6], &[0.2, 0.25]],
        );
        let layout = DetectLayout {
            anchors: 4,
            classes: 2,
            objectness: false,
            extra: 0,
        };
        let kept = layout.detect(&out, &DetectOptions::default());
        let summary: Vec<(usize, usize)> = kept.iter().map(|d| (d.anchor, d.class)).collect();
        assert_eq!(summary, [(1, 0), (2, 1)]);
        assert_eq!(kept[0].bbox, [41.0, 41.0, 61.0, 61.0]);
        assert_eq!(kept[0].score, 0.9);
        // A looser IoU threshold keeps both class-0 boxes; max_det caps the count.
        let loose = DetectOptions {
            iou: Some(0.9),
            ..DetectOptions::default()
        };
        assert_eq!(layout.detect(&out, &loose).len(), 3);
        let one = DetectOptions {
            max_det: 1,
            ..loose
        };
        assert_eq!(layout.detect(&out, &one).len(), 1);
    }

    #[test]
    fn yolov5_confidence_is_objectness_times_class_score() {
        // Two anchors, two classes: [x, y, w, h, objectness, c0, c1].
        let out = [
            10.0, 10.0, 4.0, 4.0, 0.5, 0.9, 0.2, //
            30.0, 30.0, 4.0, 4.0, 0.2, 1.0, 1.0,
        ];
        let layout = DetectLayout {
            anchors: 2,
            classes: 2,
            objectness: true,
            extra: 0,
        };
        let kept = layout.detect(&out, &DetectOptions::default());
        assert_eq!(kept.len(), 1, "anchor 1's objectness is under 0.25");
        assert_eq!((kept[0].anchor, kept[0].class, kept[0].score), (0, 0, 0.45));
        let Objective::Detection { index, objectness } = kept[0].objective(&layout) else {
            panic!("a detection objective");
        };
        assert_eq!((index, objectness), (5, Some(4)));
    }

    #[test]
    fn thresholds_outside_the_unit_range_are_refused() {
        let bad = DetectOptions {
            conf: 1.5,
            ..DetectOptions::default()
        };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "invalid option: `conf` 1.5 is outside 0..=1: give a threshold between 0 and 1"
        );
        let none = DetectOptions {
            max_det: 0,
            ..DetectOptions::default()
        };
        assert_eq!(
            none.check().unwrap_err().to_string(),
            "invalid option: `max_det` must be at least 1"
        );
    }
}
