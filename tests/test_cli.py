"""The ``sklearn-gastric`` command, run as a user runs it: in a subprocess.

One tiny model is trained once per session (the ``train`` subcommand on four
synthetic 256-pixel slides with GeoJSON annotations made from their lesion
masks, ``tests/conftest.py``); ``predict``, ``info`` and ``demo`` then run on
tiny data. Error paths that need no model run in-process through
:func:`main` to keep the suite fast. Hostile inputs are in
``test_cli_hostile.py``.
"""

import csv
import json
import os
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from cli_support import TINY_TRAIN, assert_user_error, run_cli

from sklearn_gastric import __version__, load_model, save_model
from sklearn_gastric.cli import main
from sklearn_gastric.graph._confidence import OOD_WARNING


@pytest.fixture
def cohort(cli_cohort):
    return cli_cohort


@pytest.fixture
def model(cli_model):
    return cli_model


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
    with zipfile.ZipFile(model) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["sklearn_gastric_version"] == __version__
    metadata = manifest["metadata"]
    assert metadata["classes"] == cohort["classes"]
    assert metadata["tile_size"] == 32 and metadata["k"] == 4
    # The segmenter learned the annotation classes plus "negative".
    assert metadata["segmenter_classes"] == cohort["classes"]
    assert metadata["patch_counts"]["negative"] > 0
    assert sum(metadata["patch_counts"].values()) == 4 * 16
    pipe = load_model(model)
    assert [name for name, _ in pipe.steps] == [
        "tile",
        "tissue",
        "seg",
        "topk",
        "graph",
        "gcn",
    ]
    assert pipe.named_steps["topk"].k == 4


def test_train_writes_a_pickle_only_when_named_so(model, cohort, tmp_path):
    out = tmp_path / "reuse.joblib"
    argv = ["train", str(cohort["slides"]), str(cohort["labels"])]
    argv += ["--segmenter", str(model), "--out", str(out), "-q", "--gcn-epochs", "5"]
    assert main([*argv, "--min-tissue", "0.5"]) == 0
    envelope = joblib.load(out)
    assert envelope["format"] == "sklearn-gastric-model"
    assert envelope["sklearn_gastric_version"] == __version__
    assert envelope["metadata"]["classes"] == cohort["classes"]
    assert envelope["model"].named_steps["topk"].k == 10
    # ... which predict then loads only when told to trust it.
    slide = str(cohort["paths"][0])
    predictions = tmp_path / "predictions"
    result = run_cli("predict", out, slide, "--out", predictions)
    assert_user_error(result, "predict", "--trust-pickle")
    assert not predictions.exists()
    result = run_cli("predict", out, slide, "--out", predictions, "--trust-pickle")
    assert result.returncode == 0, result.stderr


def test_train_error_paths(cohort, tmp_path, capsys):
    out = tmp_path / "model.sgm"
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
        tmp_path / "m.sgm",
    )
    assert_user_error(result, "train", "labels.csv' does not exist")


def test_train_classifier_only_with_a_reused_segmenter(model, cohort, tmp_path, capsys):
    # Written in the pickle-free format (.sgm), then used by predict.
    out = tmp_path / "reuse.sgm"
    argv = ["train", str(cohort["slides"]), str(cohort["labels"])]
    argv += ["--segmenter", str(model), "--out", str(out), "--quiet", "--k", "3"]
    argv += ["--gcn-epochs", "5", "--min-tissue", "0.5"]
    assert main(argv) == 0
    pipe = load_model(out)
    original = load_model(model).named_steps["seg"].estimator
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
    pipe = load_model(model)
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


def test_predict_report_and_the_flag_in_each_record(
    model, cohort, cmu_slide_path, tmp_path, capsys
):
    out = tmp_path / "report"
    slides = [str(cohort["paths"][0]), str(cmu_slide_path)]
    assert main(["predict", str(model), *slides, "--out", str(out), "--report"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert f"wrote {out / 'report.html'}" in captured.err
    document = json.loads((out / "predictions.json").read_text())
    pipe = load_model(model)
    threshold = pipe[-1].ood_threshold_
    for entry in document["slides"]:
        assert entry["ood_threshold"] == pytest.approx(threshold)
        assert entry["out_of_distribution"] == (entry["ood_score"] > threshold)
        line = next(x for x in printed.splitlines() if x.startswith(entry["name"]))
        assert (OOD_WARNING in line) == entry["out_of_distribution"]
    page = (out / "report.html").read_text()
    for entry in document["slides"]:
        assert entry["name"] in page
    assert page.count("data:image/png;base64,") == 3 * len(document["slides"])


def test_predict_csv(model, cohort, tmp_path, capsys):
    out = tmp_path / "csv"
    path = cohort["paths"][3]
    argv = ["predict", str(model), str(path), "--out", str(out), "--format", "csv"]
    assert main([*argv, "-q"]) == 0
    # Quiet: nothing but the warning that this (level-0) model does not know
    # its resolution, which changes what its numbers mean.
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: model {str(model)!r} does not know the ")
    with open(out / "predictions.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["name"] == path.name
    probabilities = [float(row[f"p_{c}"]) for c in cohort["classes"]]
    assert sum(probabilities) == pytest.approx(1, abs=1e-5)
    assert row["predicted_class"] == cohort["classes"][int(np.argmax(probabilities))]
    assert len(row["top_tiles"].split(";")) == 4
    assert (out / f"{path.stem}_lesion_map.png").is_file()
    assert (out / f"{path.stem}_lesions.geojson").is_file()


def test_predict_precision_bfloat16(model, cohort, tmp_path):
    # The segmenter runs in bfloat16: the probabilities move a little from
    # float32's, the class stays.
    path = cohort["paths"][0]
    runs = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        argv = ["predict", str(model), str(path), "--out", str(out), "-q"]
        assert main([*argv, "--precision", precision]) == 0
        (entry,) = json.loads((out / "predictions.json").read_text())["slides"]
        runs[precision] = entry
    low, high = runs["bfloat16"], runs["float32"]
    assert low["predicted_class"] == high["predicted_class"]
    got = [low["probabilities"][c] for c in cohort["classes"]]
    expected = [high["probabilities"][c] for c in cohort["classes"]]
    assert got != expected
    np.testing.assert_allclose(got, expected, atol=0.05)


def test_predict_rejects_an_unknown_precision(model, cohort, tmp_path):
    result = run_cli(
        "predict", model, cohort["paths"][0], "--out", tmp_path, "--precision", "fp8"
    )
    assert result.returncode == 2
    assert "invalid choice: 'fp8'" in result.stderr


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
    old = save_model(load_model(model), tmp_path / "old.joblib")
    envelope = joblib.load(old)
    envelope["sklearn_gastric_version"] = "0.0.7"
    joblib.dump(envelope, old)
    argv = ["predict", old, cohort["paths"][0], "--out", tmp_path / "o"]
    result = run_cli(*argv, "--trust-pickle")
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
    assert "it can only be a pickle" in error(["predict", text, slide, *out])
    assert "it cannot be unpickled" in error(
        ["predict", text, slide, *out, "--trust-pickle"]
    )
    other = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2]}, other)
    assert "holds a dict, not an estimator" in error(
        ["predict", str(other), slide, *out, "--trust-pickle"]
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
        "--n-patches", "32", "--n-annotated", "8", "--epochs", "1",
        "--gcn-epochs", "10",
        "--folds", "2", "--quiet",
        env={"SKLEARN_GASTRIC_DATA": str(Path(he_target_path).parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Confusion matrix" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_slides"] == 8
    assert summary["config"]["cv_folds"] == 2
    assert summary["config"]["n_annotated_slides"] == 8
    assert "Cross-validated balanced accuracy: " in result.stdout
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
