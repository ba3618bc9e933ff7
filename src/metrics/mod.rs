//! The paper's localisation and faithfulness metrics and Quantus's, as pure functions on maps
//! and masks, with the statistics of a summary; [`table::METRICS`] lists them all.
//!
//! Maps are upsampled to the image (`H * W` values, row-major); masks are `H * W` booleans
//! (`true` inside the ground-truth boxes of the explained class).

mod bbox;
mod complexity;
mod deletion_insertion;
mod drop_increase;
mod ebpg;
mod faithfulness;
mod games;
pub mod perturbation;
mod pixels;
mod pointing;
pub mod randomisation;
pub mod redone;
pub mod road;
mod row;
mod sensitivity;
pub mod significance;
pub mod similarity;
pub mod slic;
pub mod stats;
pub mod summary;
pub mod table;
mod top_k;

pub use bbox::bbox_accuracy;
pub use complexity::{complexity, sparseness};
pub use deletion_insertion::{auc, deletion_order};
pub use drop_increase::{Confidence, drop_increase, top_fraction_mask};
pub use ebpg::ebpg;
pub use faithfulness::{Faithfulness, FaithfulnessInput, KEEP_FRACTION};
pub use games::{GameScores, Games, Road};
pub use pixels::{PixelBox, boxes_mask, ranked_pixels};
pub use pointing::{PointingTally, pointing_hit};
pub use sensitivity::{max_sensitivity, sensitivity_noise};
pub use top_k::top_k_intersection;
