"""The ``sklearn-gastric`` command, run as a user runs it: in a subprocess.

One tiny model is trained once per module (the ``train`` subcommand on four
synthetic 256-pixel slides with GeoJSON annotations made from their lesion
masks); ``predict``, ``info`` and ``demo`` then run on tiny data. Error paths
that need no model run in-process through :func:`main` to keep the suite fast.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from skimage.measure import find_contours

from sklearn_gastric import __version__
from sklearn_gastric.cli import main
from sklearn_gastric.datasets import make_gastric_slides

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
    """QuPath-style Polygon features outlining a boolean mask (level-0 x, y)."""
    features = []
    for contour in find_contours(np.pad(mask, 1).astype(float), 0.5):
        ring = [[float(x - 0.5), float(y - 0.5)] for y, x in contour]
        if len(ring) >= 4:
            features.append(ring)
    return features


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


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """``main`` may set torch's thread count; restore it for the other tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four synthetic slides (one per class) as TIFFs, labels.csv, annotations."""
    root = tmp_path_factory.mktemp("cli_cohort")
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
                rings = polygons_of(mask)
                write_annotations(
                    annotations / f"{Path(path).stem}.geojson", rings, label
                )
    return {
        "root": root,
        "slides": root / "slides",
        "labels": root / "labels.csv",
        "annotations": annotations,
        "paths": [Path(p) for p in paths],
        "classes": sorted(labels),
    }


@pytest.fixture(scope="module")
def model(cohort, tmp_path_factory):
    """The tiny model, trained by the ``train`` subcommand."""
    out = tmp_path_factory.mktemp("cli_model") / "model.joblib"
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


# -- help and usage -------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["info"], ["train"], ["predict"], ["demo"]])
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sklearn-gastric")
    if command:
        assert f"sklearn-gastric {command[0]}" in out


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: MODEL, SLIDE" in (
        capsys.readouterr().err
    )


# -- train ------------------------------------------------------------------------


def test_train_writes_a_versioned_model(model, cohort):
    saved = joblib.load(model)
    assert saved["kind"] == "sklearn-gastric-model"
    assert saved["sklearn_gastric_version"] == __version__
    assert saved["classes"] == cohort["classes"]
    assert saved["tile_size"] == 32 and saved["k"] == 4
    # The segmenter learned the annotation classes plus "negative".
    assert saved["segmenter_classes"] == cohort["classes"]
    assert saved["patch_counts"]["negative"] > 0
    assert sum(saved["patch_counts"].values()) == 4 * 16
    pipe = saved["pipeline"]
    assert [name for name, _ in pipe.steps] == [
        "tile",
        "tissue",
        "seg",
        "topk",
        "graph",
        "gcn",
    ]
    assert pipe.named_steps["topk"].k == 4


def test_train_error_paths(cohort, tmp_path, capsys):
    out = tmp_path / "model.joblib"
    common = ["--out", str(out), *TINY_TRAIN]
    slides, labels = str(cohort["slides"]), str(cohort["labels"])
    annotations = ["--annotations", str(cohort["annotations"])]

    def error(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert "needs the columns 'slide' and 'label'" in error(
        ["train", slides, _write(tmp_path / "bad.csv", "name,class\na,b\n")]
        + annotations
        + common
    )
    assert "does not exist" in error(
        ["train", slides, str(tmp_path / "none.csv")] + annotations + common
    )
    missing_slide = _write(tmp_path / "missing.csv", "slide,label\nx.tiff,a\ny,b\n")
    assert "line 2: no slide file" in error(
        ["train", slides, missing_slide] + annotations + common
    )
    one_class = _write(
        tmp_path / "one.csv",
        "slide,label\n" + "".join(f"{p.name},a\n" for p in cohort["paths"]),
    )
    assert "at least two different labels" in error(
        ["train", slides, one_class] + annotations + common
    )
    assert "--annotations DIR" in error(["train", slides, labels] + common)
    broken = tmp_path / "broken"
    broken.mkdir()
    _write(broken / f"{cohort['paths'][0].stem}.geojson", "{not json")
    assert "is not valid JSON" in error(
        ["train", slides, labels, "--annotations", str(broken)] + common
    )
    assert "holds no '<slide name>.geojson'" in error(
        ["train", slides, labels, "--annotations", str(tmp_path)] + common
    )
    assert not out.exists()


def test_train_missing_labels_file_in_subprocess(cohort, tmp_path):
    result = run_cli(
        "train",
        cohort["slides"],
        tmp_path / "labels.csv",
        "--annotations",
        cohort["annotations"],
        "--out",
        tmp_path / "m.joblib",
    )
    assert_user_error(result, "train", "labels.csv' does not exist")


def test_train_classifier_only_with_a_reused_segmenter(model, cohort, tmp_path, capsys):
    # Written in the pickle-free format (.sgm), then used by predict.
    out = tmp_path / "reuse.sgm"
    argv = ["train", str(cohort["slides"]), str(cohort["labels"])]
    argv += ["--segmenter", str(model), "--out", str(out), "--quiet", "--k", "3"]
    argv += ["--gcn-epochs", "5", "--min-tissue", "0.5"]
    assert main(argv) == 0
    from sklearn_gastric._persistence import load_model

    pipe = load_model(out)
    original = joblib.load(model)["pipeline"].named_steps["seg"].estimator
    reused = pipe.named_steps["seg"].estimator
    assert pipe.named_steps["tile"].tile_size == 32
    assert pipe.named_steps["topk"].k == 3
    weights, original_weights = (
        seg.net_.module_.state_dict() for seg in (reused, original)
    )
    assert weights.keys() == original_weights.keys()
    assert all(weights[key].equal(original_weights[key]) for key in weights)
    capsys.readouterr()
    predictions = tmp_path / "predictions"
    argv = ["predict", str(out), str(cohort["paths"][0]), "--out", str(predictions)]
    assert main([*argv, "-q"]) == 0
    document = json.loads((predictions / "predictions.json").read_text())
    (entry,) = document["slides"]
    assert len(entry["top_tiles"]) == 3
    expected = pipe.predict_proba([str(cohort["paths"][0])])[0]
    got = [entry["probabilities"][c] for c in document["classes"]]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# -- predict ------------------------------------------------------------------------


def test_predict_json_with_lesion_maps(model, cohort, tmp_path):
    slides = cohort["paths"][:2]
    before = sorted(os.listdir(cohort["slides"]))
    out = tmp_path / "out"
    result = run_cli("predict", model, *slides, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(cohort["slides"])) == before
    document = json.loads((out / "predictions.json").read_text())
    assert document["classes"] == cohort["classes"]
    pipe = joblib.load(model)["pipeline"]
    expected = pipe.predict_proba([str(p) for p in slides])
    assert [s["name"] for s in document["slides"]] == [p.name for p in slides]
    for entry, proba, path in zip(document["slides"], expected, slides):
        assert entry["path"] == str(path)
        got = [entry["probabilities"][c] for c in document["classes"]]
        np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-6)
        assert entry["predicted_class"] == pipe.classes_[np.argmax(proba)]
        assert f"{entry['name']}  {entry['predicted_class']}" in result.stdout
        top = entry["top_tiles"]
        assert [t["rank"] for t in top] == [1, 2, 3, 4]
        scores = [t["score"] for t in top]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= t["x"] <= 256 - 32 and 0 <= t["y"] <= 256 - 32 for t in top)
        png = Path(entry["lesion_map_png"])
        assert png == out.absolute() / f"{path.stem}_lesion_map.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        collection = json.loads(Path(entry["geojson"]).read_text())
        assert collection["type"] == "FeatureCollection"
        assert len(collection["features"]) == entry["n_lesion_regions"]


def test_predict_csv(model, cohort, tmp_path, capsys):
    out = tmp_path / "csv"
    path = cohort["paths"][3]
    argv = ["predict", str(model), str(path), "--out", str(out), "--format", "csv"]
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""
    with open(out / "predictions.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["name"] == path.name
    probabilities = [float(row[f"p_{c}"]) for c in cohort["classes"]]
    assert sum(probabilities) == pytest.approx(1, abs=1e-5)
    assert row["predicted_class"] == cohort["classes"][int(np.argmax(probabilities))]
    assert len(row["top_tiles"].split(";")) == 4
    assert (out / f"{path.stem}_lesion_map.png").is_file()
    assert (out / f"{path.stem}_lesions.geojson").is_file()


def test_predict_same_stem_slides_get_distinct_outputs(model, cohort, tmp_path, capsys):
    copy = tmp_path / "other" / cohort["paths"][0].name
    copy.parent.mkdir()
    copy.write_bytes(cohort["paths"][0].read_bytes())
    argv = ["predict", str(model), str(cohort["paths"][0]), str(copy)]
    assert main([*argv, "--out", str(tmp_path / "o"), "-q"]) == 0
    stem = cohort["paths"][0].stem
    assert (tmp_path / "o" / f"{stem}_lesion_map.png").is_file()
    assert (tmp_path / "o" / f"{stem}_2_lesion_map.png").is_file()


def test_predict_unreadable_slide(model, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"not a slide at all" * 10)
    out = tmp_path / "out"
    result = run_cli("predict", model, bad, "--out", out)
    assert_user_error(result, "predict", "Slide 'broken.svs'")
    assert not out.exists()


def test_predict_skip_errors_goes_on(model, cohort, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 245, np.uint8)).save(blank)
    out = tmp_path / "out"
    argv = ["predict", str(model), str(blank), str(cohort["paths"][0])]
    argv += [str(tmp_path / "gone.svs"), "--out", str(out), "-q"]
    assert main(argv) == 2
    assert main([*argv[:-3], "--skip-errors", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 slide(s) skipped" in err
    assert "Slide 'blank.png': no tissue tile" in err
    assert "no such file" in err
    document = json.loads((out / "predictions.json").read_text())
    assert [s["name"] for s in document["slides"]] == [cohort["paths"][0].name]
    assert len(document["errors"]) == 2


def test_predict_model_of_another_version(model, cohort, tmp_path):
    saved = joblib.load(model)
    saved["sklearn_gastric_version"] = "0.0.7"
    old = tmp_path / "old.joblib"
    joblib.dump(saved, old)
    result = run_cli("predict", old, cohort["paths"][0], "--out", tmp_path / "o")
    assert_user_error(result, "predict", str(old))
    assert f"made by sklearn-gastric 0.0.7; this is sklearn-gastric {__version__}" in (
        result.stderr
    )


def test_predict_error_paths(model, cohort, tmp_path, capsys):
    slide = str(cohort["paths"][0])
    out = ["--out", str(tmp_path / "o")]

    def error(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert "does not exist" in error(["predict", str(tmp_path / "no.joblib"), slide])
    text = _write(tmp_path / "notes.joblib", "hello")
    assert "is not a sklearn-gastric model file" in error(
        ["predict", text, slide, *out]
    )
    other = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2]}, other)
    assert "is not a sklearn-gastric model file" in error(
        ["predict", str(other), slide, *out]
    )
    assert "no such file" in error(["predict", str(model), "nope.tiff", *out])
    assert not (tmp_path / "o").exists()


# -- info --------------------------------------------------------------------------


def test_info_on_the_real_slide(cmu_slide_path):
    result = run_cli("info", cmu_slide_path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["name"] == Path(cmu_slide_path).name
    assert info["vendor"] == "aperio"
    assert info["dimensions"] == [2220, 2967]
    assert info["level_count"] == 1
    assert info["mpp"] == pytest.approx([0.499, 0.499], abs=1e-3)
    assert info["tiles"] == (2220 // 512) * (2967 // 512)
    assert 0 < info["tissue_tiles"] <= info["tiles"]


def test_info_text_and_errors(cohort, tmp_path, capsys):
    assert main(["info", str(cohort["paths"][0]), "--tile-size", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["dimensions", "[256,", "256]"] for line in lines)
    assert any(line.split() == ["tiles", "16"] for line in lines)
    assert main(["info", str(tmp_path / "missing.svs")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["info", str(cohort["paths"][0]), "--tile-size", "512"]) == 2
    assert "smaller than one tile" in capsys.readouterr().err


def test_info_unreadable_slide(tmp_path, capsys):
    bad = tmp_path / "corrupt.tiff"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sklearn-gastric info: Slide 'corrupt.tiff'")
    assert "Traceback" not in err


# -- demo ----------------------------------------------------------------------------


def test_tiny_demo(cohort, he_target_path, tmp_path):
    out = tmp_path / "demo"
    slide = cohort["paths"][1]
    result = run_cli(
        "demo",
        "--slide", slide,
        "--out", out, "--n-slides", "8", "--slide-size", "256",
        "--n-patches", "32", "--epochs", "1", "--gcn-epochs", "10",
        "--folds", "2", "--quiet",
        env={"SKLEARN_GASTRIC_DATA": str(Path(he_target_path).parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Confusion matrix" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_slides"] == 8
    assert summary["config"]["cv_folds"] == 2
    assert 0 <= summary["cv_balanced_accuracy"] <= 1
    assert np.asarray(summary["confusion_matrix"]["matrix"]).sum() == 8
    assert summary["slide"] == slide.name
    assert sum(summary["slide_proba"].values()) == pytest.approx(1, abs=1e-5)
    assert summary["slide_prediction"] == max(
        summary["slide_proba"], key=summary["slide_proba"].get
    )
    png = Path(summary["outputs"]["lesion_map_png"])
    assert png == out / f"{slide.stem}_lesion_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    collection = json.loads(Path(summary["outputs"]["geojson"]).read_text())
    assert collection["type"] == "FeatureCollection"


def test_demo_error_paths(tmp_path, capsys):
    assert main(["demo", "--n-slides", "4", "--folds", "2"]) == 2
    assert "too few for 2-fold" in capsys.readouterr().err
    out = tmp_path / "demo"
    missing = str(tmp_path / "none.svs")
    assert main(["demo", "--slide", missing, "--quick", "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()


def _write(path, text):
    Path(path).write_text(text)
    return str(path)
