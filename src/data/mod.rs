//! Datasets: the PASCAL VOC annotation format (also used by ImageNet's validation boxes) and
//! class maps that tie annotation names to model outputs.

mod classes;
mod voc;

pub use classes::{ClassMap, VOC_CLASSES};
pub use voc::{Annotation, Object, parse_annotation};
