//! COCO masks as pycocotools 2.0.11 decodes them (`COCO.annToMask`), pixel for pixel:
//! tests/reference/make_coco_fixtures.py made tests/data/coco-mini and the masks.

mod common;

use igcam::data::coco::{Instances, Loose, bbox_pixels, mask};

#[test]
fn polygons_and_run_lengths_equal_pycocotools() {
    let text = std::fs::read_to_string(common::fixture(
        "../data/coco-mini/annotations/instances_mini.json",
    ))
    .unwrap();
    let instances: Instances = serde_json::from_str(&text).unwrap();
    let want = common::json("coco/masks.json");
    let size_of = |image_id: u64| {
        let i = instances.images.iter().find(|i| i.id == image_id).unwrap();
        [i.height, i.width]
    };
    let mut checked = 0;
    for (id, m) in want["masks"].as_object().unwrap() {
        let a = instances
            .annotations
            .iter()
            .find(|a| a.id.to_string() == *id)
            .unwrap();
        let size = size_of(a.image_id);
        let got = mask(a.segmentation.as_ref().unwrap(), size).unwrap();
        let mut runs: Vec<(bool, usize)> = Vec::new();
        for &v in &got {
            match runs.last_mut() {
                Some((value, n)) if *value == v => *n += 1,
                _ => runs.push((v, 1)),
            }
        }
        let expected: Vec<(bool, usize)> = m["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_u64().unwrap() == 1, r[1].as_u64().unwrap() as usize))
            .collect();
        let pixels = got.iter().filter(|&&v| v).count();
        assert_eq!(
            pixels as u64,
            m["pixels"].as_u64().unwrap(),
            "annotation {id}"
        );
        assert!(runs == expected, "annotation {id}: the masks differ");
        checked += 1;
    }
    assert_eq!(checked, 4);
    // The bad ones are refused with the reason.
    let polygon = &instances.annotations[4];
    assert_eq!(
        mask(polygon.segmentation.as_ref().unwrap(), [300, 451]).unwrap_err(),
        "a polygon holds 5 coordinates: it needs x, y pairs for at least 3 points"
    );
    assert_eq!(
        bbox_pixels(&instances.annotations[6].bbox, [400, 600]).unwrap_err(),
        "bbox has 3 values, not 4"
    );
    assert_eq!(
        bbox_pixels(&Loose::Read(vec![20.5, 1.0, 399.2, 299.0]), [300, 451]).unwrap(),
        [20, 1, 420, 300]
    );
}
