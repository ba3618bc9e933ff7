#!/usr/bin/env python3
"""tests/data/coco-mini (a COCO-layout set of two photos) and pycocotools' masks of its objects
(run by hand; CI only reads the results).

    pip install pycocotools==2.0.11 numpy
    python3 tests/reference/make_coco_fixtures.py

The objects cover what `instances_*.json` holds: polygons (a concave one with fractional
vertices, an object in two parts), a crowd's plain run lengths, a compressed run-length string;
and annotations eval must count as bad without stopping: a polygon with an odd number of
coordinates, an unknown category, a box of three numbers. tests/fixtures/coco/masks.json holds
`pycocotools.coco.COCO.annToMask` of every good annotation, row-major, as runs of
[value, length].
"""
import json
import os

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "coco-mini")
OUT = os.path.join(ROOT, "tests", "fixtures", "coco")


def ellipse(h, w, cy, cx, ry, rx):
    y, x = np.mgrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def plain_counts(m):
    """Column-major run lengths starting with zeros, as COCO's crowd annotations hold them."""
    flat = np.asfortranarray(m).reshape(-1, order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


def row_runs(m):
    runs = []
    for v in m.reshape(-1).astype(int):
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([int(v), 1])
    return runs


def main():
    os.makedirs(os.path.join(DATA, "annotations"), exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    images = [
        {"id": 1, "file_name": "chelsea.jpg", "width": 451, "height": 300},
        {"id": 2, "file_name": "coffee.jpg", "width": 600, "height": 400},
        {"id": 3, "file_name": "missing.jpg", "width": 64, "height": 64},
    ]
    cup = ellipse(400, 600, 150.0, 295.0, 120.0, 110.0)
    table = np.zeros((400, 600), bool)
    table[300:400, 40:580] = True
    table[280:300, 100:520] = True
    compressed = mask_utils.encode(np.asfortranarray(table.astype(np.uint8)))
    annotations = [
        # A concave outline with fractional vertices.
        {"id": 10, "image_id": 1, "category_id": 17, "iscrowd": 0, "bbox": [20.0, 1.0, 400.0, 299.0],
         "segmentation": [[20.3, 299.5, 60.7, 40.2, 150.0, 1.4, 240.5, 90.25, 330.1, 2.6, 419.6, 60.0,
                           400.2, 299.0, 230.0, 180.7]]},
        # The same cat's tail as a second object in two parts.
        {"id": 11, "image_id": 1, "category_id": 17, "iscrowd": 0, "bbox": [300.0, 200.0, 140.0, 90.0],
         "segmentation": [[300.0, 200.0, 350.5, 210.0, 340.0, 260.0], [380.2, 230.9, 440.0, 240.0, 430.5, 290.1,
                                                                         390.0, 285.0]]},
        # A crowd: plain run lengths.
        {"id": 20, "image_id": 2, "category_id": 47, "iscrowd": 1, "bbox": [185.0, 30.0, 221.0, 241.0],
         "segmentation": {"counts": plain_counts(cup), "size": [400, 600]}},
        # A compressed run-length string.
        {"id": 21, "image_id": 2, "category_id": 67, "iscrowd": 0, "bbox": [40.0, 280.0, 540.0, 120.0],
         "segmentation": {"counts": compressed["counts"].decode(), "size": [400, 600]}},
        # Bad: an odd number of coordinates; an unknown category; a box of three numbers.
        {"id": 30, "image_id": 1, "category_id": 17, "iscrowd": 0, "bbox": [10.0, 10.0, 20.0, 20.0],
         "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0]]},
        {"id": 31, "image_id": 2, "category_id": 999, "iscrowd": 0, "bbox": [1.0, 1.0, 5.0, 5.0],
         "segmentation": [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0]]},
        {"id": 32, "image_id": 2, "category_id": 47, "iscrowd": 0, "bbox": [1.0, 1.0, 5.0],
         "segmentation": [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0]]},
    ]
    categories = [{"id": 17, "name": "cat", "supercategory": "animal"},
                  {"id": 47, "name": "cup", "supercategory": "kitchen"},
                  {"id": 67, "name": "dining table", "supercategory": "furniture"}]
    instances = {"info": {"description": "igcam coco-mini"}, "images": images, "annotations": annotations,
                 "categories": categories}
    path = os.path.join(DATA, "annotations", "instances_mini.json")
    with open(path, "w") as f:
        json.dump(instances, f, separators=(",", ":"))
    coco = COCO(path)
    masks = {}
    for a in annotations:
        if a["id"] >= 30:
            continue
        m = coco.annToMask(coco.anns[a["id"]])
        masks[str(a["id"])] = {"size": list(m.shape), "pixels": int(m.sum()), "runs": row_runs(m)}
    with open(os.path.join(OUT, "masks.json"), "w") as f:
        json.dump({"pycocotools": "2.0.11", "masks": masks}, f, separators=(",", ":"))
    print({k: v["pixels"] for k, v in masks.items()})


if __name__ == "__main__":
    main()
