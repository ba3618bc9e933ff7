"""``Explainer.evaluate`` gives ``igcam-wgpu eval``'s numbers for the same image, maps and
ground truth, and takes the ground truth as boxes or masks."""

import json
import subprocess

import numpy as np
import pytest

import igcam
from conftest import ROOT

VOC = ROOT / "tests" / "data" / "voc-mini"
# Every metric beyond the paper's (`all`).
ALL_METRICS = ["top_k", "sparseness", "complexity", "pixel_flipping", "region_perturbation",
               "faithfulness_correlation", "road_morf", "road_lerf", "road_combined", "road_accuracy", "irof",
               "max_sensitivity", "random_logit", "mprt", "mprt_ssim"]


def test_evaluate_equals_the_clis_eval(cli, lite0, tmp_path):
    subprocess.run([cli, "eval", "--data", str(VOC), "--classes", str(VOC / "classes.txt"), "--methods",
                    "igcam,gradcam", "--steps", "4", "--curve-steps", "4", "--backend", "cpu", "--quiet",
                    "--out", str(tmp_path), "--npy", "--metrics", "all", "--regions", "6", "--fc-runs", "5",
                    "--fc-subset", "5000", "--road-percentiles", "30,70", "--road-accuracy-percentages", "20,60",
                    "--ms-samples", "2", "--mprt-layers", "2", "--seed", "3",
                    "--limit", "3"], check=True, timeout=600, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["image"] == "coffee"]
    assert [(r["method"], r["target"]) for r in rows] == [("igcam", 967), ("gradcam", 967)]
    maps = lite0.explain(VOC / "JPEGImages" / "coffee.jpg", targets=967, methods=["igcam", "gradcam"], steps=4)
    masks = [np.load(tmp_path / "maps" / f"coffee_espresso_{m.method}.mask.npy") > 0.5 for m in maps]
    scores = lite0.evaluate(maps, masks=masks, curve_steps=4, metrics="all", regions=6, fc_runs=5, fc_subset=5000,
                            road_percentiles=[30, 70], road_accuracy_percentages=[20, 60], ms_samples=2,
                            mprt_layers=2, seed=3)
    for s, r in zip(scores, rows):
        for name in ["ebpg", "bbox", "drop", "deletion", "insertion"]:
            assert getattr(s, name) == pytest.approx(r[name], rel=1e-9, abs=1e-12), name
        assert (s.increase, s.pointing) == (r["increase"], r["pointing"])
        assert sorted(s.extra) == sorted(r["extra"]) and len(s.extra) == len(ALL_METRICS)
        for name, value in s.extra.items():
            assert value == pytest.approx(r["extra"][name], rel=1e-9, abs=1e-12), name


def test_ground_truth_as_boxes_or_masks(lite0):
    maps = lite0.explain(ROOT / "assets" / "images" / "chelsea.png", targets="top2", methods=["gradcam"])
    whole = np.ones((224, 224), bool)
    by_box = lite0.evaluate(maps, boxes=[(0, 0, 224, 224)])
    by_mask = lite0.evaluate(maps, masks=whole)
    assert by_box == by_mask
    assert all(s.ebpg == 1.0 and s.pointing is True for s in by_box)
    left = np.zeros((224, 224), bool)
    left[:, :112] = True
    per = lite0.evaluate(maps, boxes=[[(0, 0, 112, 224)], None])
    alone = lite0.evaluate(maps[:1], masks=[left])[0]  # scored in other chunks: rounding differs
    assert per[0]._replace(insertion=0, deletion=0, drop=0) == alone._replace(insertion=0, deletion=0, drop=0)
    assert np.allclose(per[0][:4:2], alone[:4:2], rtol=1e-6) and per[0].insertion == pytest.approx(alone.insertion)
    assert per[0].ebpg < 1.0
    assert (per[1].ebpg, per[1].bbox, per[1].pointing) == (None, None, None)
    assert 0 <= per[1].drop <= 1 and 0 <= per[1].deletion <= 1 and 0 <= per[1].insertion <= 1
    # Without ground truth the faithfulness metrics need nothing else.
    plain = lite0.evaluate(maps)
    assert [p.drop for p in plain] == [b.drop for b in by_box]


def test_ground_truth_per_explanation_in_any_container(lite0):
    maps = lite0.explain(ROOT / "assets" / "images" / "chelsea.png", targets="top2", methods=["gradcam"])
    left = np.zeros((224, 224), bool)
    left[:, :112] = True
    listed = lite0.evaluate(maps, masks=[left, None])
    stacked = lite0.evaluate(maps, masks=np.stack([left, left]))
    assert listed[0] == stacked[0]
    assert stacked[1].ebpg is not None and listed[1].ebpg is None
    assert lite0.evaluate(maps, boxes=np.array([[0, 0, 112, 224]])) == lite0.evaluate(maps, masks=left)


def test_evaluate_refuses_what_it_cannot_score(lite0):
    maps = lite0.explain(ROOT / "assets" / "images" / "chelsea.png", methods="gradcam")
    maps[0].target = 1000
    with pytest.raises(igcam.InputError) as raised:
        lite0.evaluate(maps)
    assert str(raised.value) == "target class 1000 is out of range: the model has 1000 classes (valid: 0 to 999)"
    maps[0].target = 285
    maps[0].photo = maps[0].photo[:100]
    with pytest.raises(igcam.InputError) as raised:
        lite0.evaluate(maps)
    assert str(raised.value) == ("the photo holds 67200 bytes but the model's input is 224x224x3: score explanations "
                                 "of this explainer")


@pytest.mark.parametrize("kwargs, message", [
    (dict(boxes=[(0, 0, 5, 5)], masks=np.ones((224, 224), bool)), "give `boxes` or `masks`, not both"),
    (dict(boxes=[(-1, 0, 5, 5)]), "a box (-1, 0, 5, 5) has a negative coordinate: boxes are pixels of the model's input"),
    (dict(masks=np.ones((10, 10), bool)), "a mask has shape (10, 10) but the model's input is (224, 224)"),
    (dict(score="probit"), "invalid option: unknown score `probit` (softmax, sigmoid, logit)"),
    (dict(curve_steps=0), "`curve_steps` must be at least 1"),
    (dict(tolerance=-1), "`tolerance` -1 must be a finite number of pixels, 0 or more"),
    (dict(fc_runs=1), "`fc_runs` must be at least 2, not 1"),
    (dict(metrics=["top_k", "road"]), "invalid option: unknown metric `road` in `metrics`: use default, all, or some "
                                      "of ebpg, bbox, pointing, drop, increase, deletion, insertion, top_k, sparseness, "
                                      "complexity, pixel_flipping, region_perturbation, faithfulness_correlation, road_morf, "
                                      "road_lerf, road_combined, road_accuracy, irof, max_sensitivity, random_logit, mprt, mprt_ssim"),
    (dict(metrics="mprt", ms_radius=0), "`ms_radius` 0 must be a finite number above 0"),
    (dict(metrics="mprt", mprt_layers=0), "`mprt_layers` must be at least 1, not 0"),
    (dict(metrics="max_sensitivity,mprt", ms_samples=60), "these metrics explain each image 110 more times "
                                                          "(`ms_samples`, random_logit, mprt's layers), over "
                                                          "`max_explanations` 100: lower `ms_samples` or "
                                                          "`mprt_layers`, or raise `max_explanations`"),
    (dict(curve_steps=5000), "these metrics need 9999 forward passes per explanation at 224x224 (`curve_steps`, "
                             "`flip_step`, `regions`, `fc_runs`, `road_percentiles`, `road_accuracy_percentages`, `irof_segments`), over `max_forwards` 2000: lower those or raise "
                             "`max_forwards`"),
])
def test_evaluate_refuses_bad_ground_truth(lite0, kwargs, message):
    maps = lite0.explain(ROOT / "assets" / "images" / "chelsea.png", methods="gradcam")
    with pytest.raises(igcam.InputError) as raised:
        lite0.evaluate(maps, **kwargs)
    assert str(raised.value) == message
