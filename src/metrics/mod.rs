//! The paper's localisation and faithfulness metrics, as pure functions on maps and masks.
//!
//! Maps are upsampled to the image (`H * W` values, row-major); masks are `H * W` booleans
//! (`true` inside the ground-truth boxes of the explained class).

mod bbox;
mod deletion_insertion;
mod drop_increase;
mod ebpg;
mod faithfulness;
mod pixels;
mod pointing;
pub mod summary;

pub use bbox::bbox_accuracy;
pub use deletion_insertion::{auc, deletion_order};
pub use drop_increase::{Confidence, drop_increase, top_fraction_mask};
pub use ebpg::ebpg;
pub use faithfulness::{Faithfulness, FaithfulnessInput, KEEP_FRACTION};
pub use pixels::{PixelBox, boxes_mask, ranked_pixels};
pub use pointing::{PointingTally, pointing_hit};
