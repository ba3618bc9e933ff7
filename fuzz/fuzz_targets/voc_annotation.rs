//! Bytes -> UTF-8 -> `parse_annotation` (the depth check, roxmltree, the VOC fields) -> boxes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(annotation) = igcam::data::parse_annotation(text) {
        for class in annotation.classes() {
            for b in annotation.boxes(class) {
                assert!(b.x0 <= b.x1 && b.y0 <= b.y1, "{b:?}");
            }
        }
    }
});
