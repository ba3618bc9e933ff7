//! Image bytes -> decode (PNG, JPEG, with the pixel budget and the truncation check) -> the
//! centre-crop geometry check -> resize and crop to 224x224 -> normalise.
#![no_main]

use igcam::preprocess::{self, DecodeOptions, Geometry, Preset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(image) = preprocess::decode_with(bytes, DecodeOptions::default()) else {
        return;
    };
    let geometry = Geometry::new([image.width(), image.height()], [224, 224], true);
    if geometry.check(igcam::budget::DEFAULT_MAX_PIXELS).is_err() {
        return;
    }
    let photo = preprocess::fit(&image, [224, 224], true);
    assert_eq!(photo.dimensions(), (224, 224));
    let chw = preprocess::normalise(&photo, Preset::Imagenet);
    assert_eq!(chw.len(), 3 * 224 * 224);
});
