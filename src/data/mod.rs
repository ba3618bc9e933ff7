//! Datasets: the PASCAL VOC annotation format (also used by ImageNet's validation boxes),
//! ImageNet's `LOC_val_solution.csv`, COCO's `instances_*.json`, a folder's CSV of labels,
//! and class maps that tie annotation names to model outputs.

mod classes;
pub mod coco;
mod imagenet;
mod voc;

pub use classes::{
    COCO_CLASSES, ClassMap, VOC_CLASSES, coco_detection_labels, imagenet_labels,
    voc_segmentation_labels,
};
pub use imagenet::{Lines, parse_labels_csv, parse_loc_solution};
pub use voc::{Annotation, Object, parse_annotation};
