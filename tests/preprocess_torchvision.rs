//! `preprocess::fit` against torchvision: `Resize(round(size * 256 / 224)) + CenterCrop(size)`
//! of each demo photo on PIL (fixtures from `tests/reference/make_fixtures.py`), pixel for pixel.

mod common;

use std::path::Path;

use common::fixture;
use igcam::preprocess;

/// Pixels of `fit(photo)` that differ from torchvision's, and the largest difference.
fn differences(photo: &str, size: usize) -> (usize, u8) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(root.join("assets/images").join(photo)).unwrap();
    let ours = preprocess::fit(&preprocess::decode(&bytes).unwrap(), [size, size], true);
    let stem = photo.rsplit_once('.').unwrap().0;
    let want = std::fs::read(fixture(&format!("preprocess/{stem}_{size}.png"))).unwrap();
    let want = preprocess::decode(&want).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), want.dimensions(), "{photo} at {size}");
    let diffs: Vec<u8> = ours
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .filter(|&d| d > 0)
        .collect();
    (diffs.len(), diffs.iter().copied().max().unwrap_or(0))
}

#[test]
fn png_photos_are_resized_and_cropped_exactly_like_torchvision() {
    for (photo, size) in [
        ("chelsea.png", 224),
        ("chelsea.png", 299),
        ("astronaut.png", 224),
        ("coffee.png", 224),
    ] {
        assert_eq!(differences(photo, size), (0, 0), "{photo} at {size}");
    }
}

/// JPEG decoders differ slightly (PIL's libjpeg vs the `image` crate's), before any resizing.
#[test]
fn jpeg_photos_are_within_a_few_grey_levels_of_torchvision() {
    for photo in ["grace_hopper.jpg", "rocket.jpg"] {
        let (count, max) = differences(photo, 224);
        assert!(max <= 2, "{photo}: {count} values differ, by up to {max}");
    }
}
