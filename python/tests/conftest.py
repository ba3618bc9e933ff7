"""Shared fixtures: the repository's photos, a seeded torchvision ResNet-18 with its BatchNorm
calibrated on them (random statistics make a deep net's maps degenerate), the CLI binary."""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGES = ROOT / "assets" / "images"
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "grace_hopper.jpg", "rocket.jpg"]
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def rel_l2(a, b):
    """Relative L2 distance of ``a`` from the reference ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def normalised(name, size=224):
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize, as ``3xHxW`` float32."""
    from PIL import Image
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(size), transforms.ToTensor(),
                                   transforms.Normalize(MEAN.tolist(), STD.tolist())])
    return pipeline(Image.open(IMAGES / name).convert("RGB")).numpy()


@pytest.fixture(scope="session")
def photos():
    return np.stack([normalised(p) for p in PHOTOS])


@pytest.fixture(scope="session")
def resnet18(photos):
    """torchvision's ResNet-18, seed 0, BatchNorm statistics from the five photos, eval mode."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the calibration batches
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(photos))
        model(torch.from_numpy(photos[:, :, ::-1].copy()))
    return model.eval()


@pytest.fixture(scope="session")
def cli():
    """The CLI binary (IGCAM_CLI, else the release build in CARGO_TARGET_DIR or target/)."""
    candidates = [os.environ.get("IGCAM_CLI")]
    for target in [os.environ.get("CARGO_TARGET_DIR"), str(ROOT / "target")]:
        if target:
            candidates.append(os.path.join(target, "release", "igcam-wgpu"))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("no igcam-wgpu binary: run `cargo build --release` or set IGCAM_CLI")


@pytest.fixture(scope="session")
def lite0():
    import igcam

    return igcam.Explainer(backend="cpu")
