#!/usr/bin/env python3
"""Build tests/data/voc-mini/: a PASCAL-VOC-layout set from the repo's public-domain photos.

The boxes were drawn by hand: each photo was shown with a 50-pixel grid over it and the corners
of each object read off the grid (VOC convention: 1-based, inclusive corners). The photos are
re-encoded as JPEG (quality 85) to keep the set small. `classes.txt` maps the annotation names
to ImageNet-1k outputs; `person` is deliberately left unmapped (counted as skipped).

    python3 tests/data/make_voc_mini.py
"""
import os

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "voc-mini")
IMAGES = os.path.join(ROOT, "assets", "images")

# id: (source file, [(name, xmin, ymin, xmax, ymax)])
ANNOTATIONS = {
    "chelsea": ("chelsea.png", [("cat", 20, 1, 420, 300)]),
    "coffee": ("coffee.png", [("espresso", 170, 15, 420, 290)]),
    "rocket": ("rocket.jpg", [("rocket", 298, 120, 338, 410)]),
    "grace_hopper": ("grace_hopper.jpg", [("person", 10, 20, 512, 600), ("uniform", 10, 320, 500, 600)]),
    "astronaut": ("astronaut.png", [("person", 100, 1, 512, 512)]),
}

CLASSES = """# annotation name -> ImageNet-1k output indices
cat 281,282,283,284,285
espresso 967,968
rocket 657,812
uniform 652
"""


def xml(image_id, w, h, objects):
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>\n"
        for n, x0, y0, x1, y1 in objects
    )
    return (f"<annotation><folder>voc-mini</folder><filename>{image_id}.jpg</filename>\n"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>\n{objs}</annotation>\n")


def main():
    for d in ["JPEGImages", "Annotations", "ImageSets/Main"]:
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
    for image_id, (src, objects) in ANNOTATIONS.items():
        im = Image.open(os.path.join(IMAGES, src)).convert("RGB")
        im.save(os.path.join(OUT, "JPEGImages", f"{image_id}.jpg"), quality=85)
        with open(os.path.join(OUT, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(xml(image_id, im.width, im.height, objects))
    with open(os.path.join(OUT, "ImageSets", "Main", "test.txt"), "w") as f:
        f.write("\n".join(sorted(ANNOTATIONS)) + "\n")
    with open(os.path.join(OUT, "classes.txt"), "w") as f:
        f.write(CLASSES)


if __name__ == "__main__":
    main()
