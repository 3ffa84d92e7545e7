"""Helpers of the command-line tests: run the CLI as a user does, build the
tiny annotated cohort it trains on."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from skimage.measure import find_contours

TINY_TRAIN = [
    "--tile-size", "32", "--depth", "2", "--base-channels", "4",
    "--feature-dim", "8", "--epochs", "2", "--gcn-epochs", "20", "--k", "4",
    "--patches-per-slide", "16", "--min-tissue", "0.5",
]  # fmt: skip


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run ``python -m sklearn_gastric.cli ARGS``; return the CompletedProcess."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sklearn_gastric.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def assert_user_error(result, command, match):
    """Exit status 2, one ``sklearn-gastric COMMAND: ...`` line, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"sklearn-gastric {command}: " in result.stderr
    assert match in result.stderr, result.stderr


def polygons_of(mask):
    """QuPath-style Polygon rings outlining a boolean mask (level-0 x, y)."""
    rings = []
    for contour in find_contours(np.pad(mask, 1).astype(float), 0.5):
        ring = [[float(x - 0.5), float(y - 0.5)] for y, x in contour]
        if len(ring) >= 4:
            rings.append(ring)
    return rings


def write_annotations(path, rings, class_name):
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": class_name, "color": [200, 0, 0]},
            },
        }
        for ring in rings
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def make_cli_cohort(root):
    """Four synthetic slides (one per class) as TIFFs, labels.csv, annotations."""
    from sklearn_gastric.datasets import make_gastric_slides

    paths, labels, masks = make_gastric_slides(
        4, size=256, lesion_fraction=0.15, out_dir=root / "slides", random_state=0
    )
    annotations = root / "annotations"
    annotations.mkdir()
    with open(root / "labels.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["slide", "label"])
        for path, label, mask in zip(paths, labels, masks):
            writer.writerow([Path(path).name, label])
            if mask.any():
                write_annotations(
                    annotations / f"{Path(path).stem}.geojson", polygons_of(mask), label
                )
    return {
        "root": root,
        "slides": root / "slides",
        "labels": root / "labels.csv",
        "annotations": annotations,
        "paths": [Path(p) for p in paths],
        "classes": sorted(labels),
    }


def train_cli_model(cohort, out):
    """The tiny model, trained by the ``train`` subcommand."""
    result = run_cli(
        "train",
        cohort["slides"],
        cohort["labels"],
        "--annotations",
        cohort["annotations"],
        "--out",
        out,
        "--quiet",
        *TINY_TRAIN,
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    return out
