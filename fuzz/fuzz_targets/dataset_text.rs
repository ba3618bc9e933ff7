//! Bytes -> UTF-8 -> the text datasets eval reads besides VOC's XML: ImageNet's
//! `LOC_val_solution.csv` and a folder's `labels.csv` (`Lines`: a value or a reason per line),
//! then COCO's `instances_*.json` (serde) and each object's box and mask, images over 4096
//! pixels skipped as eval refuses large ones before allocating.
#![no_main]

use igcam::data::coco::{Instances, bbox_pixels, mask};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    for (_, line) in igcam::data::parse_loc_solution(text) {
        if let Ok((_, objects)) = line {
            for o in objects {
                assert!(
                    o.bbox.x0 <= o.bbox.x1 && o.bbox.y0 <= o.bbox.y1,
                    "{:?}",
                    o.bbox
                );
            }
        }
    }
    for (_, line) in igcam::data::parse_labels_csv(text) {
        if let Ok((image, label)) = line {
            assert!(!image.is_empty() && !label.is_empty());
        }
    }
    let Ok(instances) = serde_json::from_str::<Instances>(text) else {
        return;
    };
    for a in &instances.annotations {
        let Some(image) = instances.images.iter().find(|i| i.id == a.image_id) else {
            continue;
        };
        let size = [image.height, image.width];
        if size[0].saturating_mul(size[1]) > 4096 || size.contains(&0) {
            continue;
        }
        if let Ok([x0, y0, x1, y1]) = bbox_pixels(&a.bbox, size) {
            assert!(x0 <= x1 && x1 <= size[1] && y0 <= y1 && y1 <= size[0]);
        }
        if let Some(s) = &a.segmentation
            && let Ok(m) = mask(s, size)
        {
            assert_eq!(m.len(), size[0] * size[1]);
        }
    }
});
