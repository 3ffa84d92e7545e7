"""Hostile and careless input to the command line, run as a user runs it.

Every case runs ``sklearn-gastric`` in a subprocess and checks its exit
status: 2 with a ``sklearn-gastric COMMAND: ...`` message naming the input
for bad input, found before any long work; 130 for Ctrl-C. A model file
never runs code unless the user trusts a pickle explicitly, and outputs are
never half-written or silently dropped, whatever the interruption or the
concurrency.
"""

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from cli_support import assert_user_error, run_cli, write_annotations
from hostile_models import Payload, declare_array, zip_bomb
from PIL import Image
from sklearn.pipeline import Pipeline

from sklearn_gastric import (
    GCNSlideClassifier,
    PatchSegmenter,
    Tiler,
    TopKSelector,
    save_model,
)

PNG_END = b"IEND\xaeB`\x82"


def write_sparse_tiff(path, width, height, tile=4096):
    """A valid tiled TIFF declaring ``width x height`` pixels in a few hundred
    KB: every tile entry points at the same deflated tile of tissue colour."""
    n_tiles = -(-width // tile) * -(-height // tile)
    data = zlib.compress(np.full((tile, tile, 3), (200, 120, 180), np.uint8), 9)
    bits = struct.pack("<3H", 8, 8, 8)
    at_data, at_bits = 8, 8 + len(data)
    at_offsets = at_bits + len(bits)
    at_counts = at_offsets + 4 * n_tiles
    at_ifd = at_counts + 4 * n_tiles
    tags = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, at_bits),
        (259, 3, 1, 8), (262, 3, 1, 2), (277, 3, 1, 3), (284, 3, 1, 1),
        (322, 3, 1, tile), (323, 3, 1, tile),
        (324, 4, n_tiles, at_offsets), (325, 4, n_tiles, at_counts),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        if kind == 3 and count == 1:  # one SHORT, left-justified in the field
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    with open(path, "wb") as file:
        file.write(b"II*\x00" + struct.pack("<I", at_ifd) + data + bits)
        file.write(struct.pack(f"<{n_tiles}I", *[at_data] * n_tiles))
        file.write(struct.pack(f"<{n_tiles}I", *[len(data)] * n_tiles))
        file.write(ifd + struct.pack("<I", 0))
    return path


def _blank_png(path, size=256):
    Image.fromarray(np.full((size, size, 3), 245, np.uint8)).save(path)
    return path


def _index(out):
    return json.loads((out / "predictions.json").read_text())


def assert_folder_agrees_with_its_index(out):
    """Every lesion map is complete and listed; every listed file exists."""
    document = _index(out)
    listed = {Path(s["lesion_map_png"]).name for s in document["slides"]}
    present = {p.name for p in out.glob("*_lesion_map.png")}
    assert present == listed
    for name in present:
        assert (out / name).read_bytes().endswith(PNG_END), name
    for entry in document["slides"]:
        assert Path(entry["geojson"]).is_file()
    assert not list(out.glob(".*.part")), "a temporary file was left behind"
    return document


# -- model files: never code --------------------------------------------------------


def test_a_pickle_named_sgm_never_runs(cli_cohort, tmp_path):
    marker = tmp_path / "pwned"
    slide = cli_cohort["paths"][0]
    for name, extra in [("evil.sgm", []), ("EVIL.SGM", ["--trust-pickle"])]:
        evil = tmp_path / name
        evil.write_bytes(pickle.dumps(Payload(marker)))
        result = run_cli("predict", evil, slide, "--out", tmp_path / "o", *extra)
        assert_user_error(result, "predict", f"{name}' is named .sgm but is not")
        assert "the start of a pickle" in result.stderr
        assert "nothing in it was run" in result.stderr
    result = run_cli(
        "train", cli_cohort["slides"], cli_cohort["labels"], "--segmenter", evil,
        "--trust-pickle", "--out", tmp_path / "m.sgm",
    )  # fmt: skip
    assert_user_error(result, "train", "is named .sgm but is not")
    assert not marker.exists()
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.sgm").exists()
    pickle.loads(evil.read_bytes())  # the payload is live: unpickling runs it
    assert marker.exists()


def test_a_pickle_loads_only_when_trusted_explicitly(cli_cohort, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.joblib"
    joblib.dump(Payload(marker), evil)
    slide = cli_cohort["paths"][0]
    result = run_cli("predict", evil, slide, "--out", tmp_path / "o")
    assert_user_error(result, "predict", "loading a pickle can run any code")
    assert "--trust-pickle" in result.stderr
    assert not marker.exists()
    # Trusted, it runs: that is what trusting a pickle means. What it gave
    # back is no model.
    result = run_cli("predict", evil, slide, "--out", tmp_path / "o", "--trust-pickle")
    assert_user_error(result, "predict", "holds a TextIOWrapper, not an estimator")
    assert marker.exists()


def test_a_model_declaring_terabytes_is_refused_before_allocating(
    cli_model, cli_cohort, tmp_path
):
    # 10**6 x 10**6 float64: 7.3 TiB declared by a file of a few KB.
    huge = declare_array(cli_model, (10**6, 10**6), name=f"{tmp_path.name}.sgm")
    assert huge.stat().st_size < 2**20
    result = run_cli("predict", huge, cli_cohort["paths"][0], "--out", tmp_path / "o")
    assert_user_error(result, "predict", "(8000000000000 bytes) but holds")
    assert "MemoryError" not in result.stderr


def test_a_zip_bomb_is_refused_before_it_is_inflated(cli_model, cli_cohort, tmp_path):
    bomb = zip_bomb(cli_model, name=f"{tmp_path.name}.sgm")
    assert bomb.stat().st_size < 2**21
    result = run_cli("predict", bomb, cli_cohort["paths"][0], "--out", tmp_path / "o")
    assert_user_error(result, "predict", "bytes once decompressed, more than the")
    assert "zip bomb" in result.stderr


def test_a_model_file_that_is_no_pipeline(cli_cohort, tmp_path):
    slide = cli_cohort["paths"][0]
    models = {
        "topk.sgm": (TopKSelector(k=3), "holds a TopKSelector, not a trained"),
        "unfitted.sgm": (
            Pipeline([("tile", Tiler()), ("seg", PatchSegmenter())]),
            "holds an untrained Pipeline",
        ),
        "partial.sgm": (
            Pipeline([("tile", Tiler()), ("gcn", GCNSlideClassifier())]),
            "holds a Pipeline without a PatchSegmenter step",
        ),
    }
    for name, (model, message) in models.items():
        path = save_model(model, tmp_path / name)
        result = run_cli("predict", path, slide, "--out", tmp_path / "o")
        assert_user_error(result, "predict", message)
        assert name in result.stderr
    assert not (tmp_path / "o").exists()


def test_truncated_model_and_folder_given_as_a_model(cli_model, cli_cohort, tmp_path):
    truncated = tmp_path / "cut.sgm"
    truncated.write_bytes(cli_model.read_bytes()[: cli_model.stat().st_size // 2])
    slide = cli_cohort["paths"][0]
    result = run_cli("predict", truncated, slide, "--out", tmp_path / "o")
    assert_user_error(result, "predict", "cut.sgm' is truncated or damaged")
    assert "joblib" not in result.stderr
    result = run_cli("predict", tmp_path, slide, "--out", tmp_path / "o")
    assert_user_error(result, "predict", "is a folder, not a model file")


# -- inputs -------------------------------------------------------------------------


def test_train_refuses_bad_options_before_any_work(cli_cohort, tmp_path):
    for option, message in [
        (["--device", "potato"], "--device: device='potato' is not a torch device"),
        (["--device", "cuda:7"], "--device: device='cuda:7'"),
        (["--lr", "nan"], "The 'lr' parameter of PatchSegmenter must be"),
        (["--threshold", "5"], "The 'threshold' parameter of PearsonGraphBuilder"),
    ]:
        # The missing labels file shows the options are checked first.
        result = run_cli(
            "train", cli_cohort["slides"], tmp_path / "no-such.csv",
            "--annotations", cli_cohort["annotations"], *option,
            "--out", tmp_path / "m.sgm",
        )  # fmt: skip
        assert_user_error(result, "train", message)
    assert not (tmp_path / "m.sgm").exists()


def test_bad_labels_files(cli_cohort, tmp_path):
    names = [p.name for p in cli_cohort["paths"]]
    extra = tmp_path / "extra.csv"
    extra.write_text(
        "slide,label\n"
        + f"{names[0]},negative\n{names[1]},HGIN,oops\n{names[2]},LGIN\n"
    )
    common = ["--annotations", cli_cohort["annotations"], "--out", tmp_path / "m.sgm"]
    result = run_cli("train", cli_cohort["slides"], extra, *common)
    assert_user_error(result, "train", "extra.csv', line 3: 3 fields, but the header")
    result = run_cli("train", cli_cohort["slides"], tmp_path, *common)
    assert_user_error(result, "train", "is a folder, not a CSV file")


def _geojson_case(cli_cohort, folder, content):
    annotations = folder / "annotations"
    shutil.copytree(cli_cohort["annotations"], annotations)
    stem = cli_cohort["paths"][1].stem
    (annotations / f"{stem}.geojson").write_text(content)
    return annotations


@pytest.mark.parametrize(
    "case, message",
    [
        ("deep", "nested too deeply"),
        ("boolean", "a polygon point must be [x, y]"),
        ("string", "a polygon point must be [x, y]"),
    ],
)
def test_bad_geojson(cli_cohort, tmp_path, case, message):
    ring = [[0, 0], [40, 0], [40, 40], [0, 0]]
    if case == "deep":
        content = "[" * 100_000 + "]" * 100_000
    else:
        bad = {"boolean": [True, False], "string": ["10", "20"]}[case]
        path = tmp_path / "one.geojson"
        write_annotations(path, [[*ring[:2], bad, ring[3]]], "HGIN")
        content = path.read_text()
    annotations = _geojson_case(cli_cohort, tmp_path, content)
    result = run_cli(
        "train", cli_cohort["slides"], cli_cohort["labels"],
        "--annotations", annotations, "--out", tmp_path / "m.sgm",
    )  # fmt: skip
    assert_user_error(result, "train", message)
    assert f"{cli_cohort['paths'][1].stem}.geojson" in result.stderr


def test_output_locations_are_checked_before_any_work(cli_model, cli_cohort, tmp_path):
    slide = cli_cohort["paths"][0]
    a_file = tmp_path / "taken"
    a_file.write_text("earlier results")
    for out, messages in [
        (a_file, ["exists and is not a folder"]),
        (a_file / "sub", ["cannot be created"]),
        # Root may write almost anywhere, but not there.
        (Path("/proc/sklearn_gastric_out"), ["cannot be written", "not writable"]),
    ]:
        result = run_cli("predict", cli_model, slide, "--out", out)
        assert_user_error(result, "predict", f"--out '{out}'")
        assert any(message in result.stderr for message in messages)
    result = run_cli("demo", "--quick", "--out", a_file)
    assert_user_error(result, "demo", "exists and is not a folder")
    result = run_cli(
        "train", cli_cohort["slides"], cli_cohort["labels"],
        "--annotations", cli_cohort["annotations"], "--out", a_file / "m.sgm",
    )  # fmt: skip
    assert_user_error(result, "train", f"--out '{a_file / 'm.sgm'}': its folder")
    # The folder is refused before the labels file is even read.
    result = run_cli(
        "train", cli_cohort["slides"], tmp_path / "no-such.csv",
        "--annotations", cli_cohort["annotations"], "--out", tmp_path,
    )  # fmt: skip
    assert_user_error(result, "train", f"--out '{tmp_path}' is a folder")
    assert a_file.read_text() == "earlier results"


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere"
)
def test_an_unwritable_output_folder(cli_model, cli_cohort, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli("predict", cli_model, cli_cohort["paths"][0], "--out", locked)
    assert_user_error(result, "predict", "is not writable")


def test_a_slide_too_large_to_view_answers_at_once(cli_model, tmp_path):
    huge = write_sparse_tiff(tmp_path / "huge.tiff", 10**6, 10**6)
    started = time.perf_counter()
    result = run_cli("info", huge, timeout=120)
    assert_user_error(result, "info", "Slide 'huge.tiff': a view at downsample")
    assert "1000000x1000000 pixels" in result.stderr
    assert "pyramid" in result.stderr
    result = run_cli("predict", cli_model, huge, "--out", tmp_path / "o", timeout=120)
    assert_user_error(result, "predict", "Slide 'huge.tiff'")
    assert time.perf_counter() - started < 60


def test_demo_and_predict_give_the_same_answer_for_a_blank_slide(cli_model, tmp_path):
    blank = _blank_png(tmp_path / "white.png")
    predicted = run_cli("predict", cli_model, blank, "--out", tmp_path / "p")
    assert_user_error(predicted, "predict", "Slide 'white.png': no tissue tile.")
    started = time.perf_counter()
    # The demo's model reads slides at 0.5 µm/px; a PNG states no resolution.
    assumed = ["--assume-mpp", "0.5"]
    demo = run_cli(
        "demo", "--quick", "--slide", blank, *assumed, "--out", tmp_path / "d"
    )
    assert_user_error(demo, "demo", "Slide 'white.png': no tissue tile.")
    # Refused before rendering or training anything.
    assert time.perf_counter() - started < 60
    assert "training" not in demo.stdout
    assert not (tmp_path / "d" / "summary.json").exists()
    message = predicted.stderr.split("sklearn-gastric predict: ")[1].splitlines()[0]
    assert f"sklearn-gastric demo: {message}" in demo.stderr
    tiny = _blank_png(tmp_path / "tiny.png", size=16)
    demo = run_cli(
        "demo", "--quick", "--slide", tiny, *assumed, "--out", tmp_path / "d"
    )
    assert_user_error(demo, "demo", "Slide 'tiny.png' is smaller than one tile")
    demo = run_cli("demo", "--quick", "--slide", blank, "--out", tmp_path / "d")
    assert_user_error(
        demo, "demo", "Slide 'white.png': its file does not state a usable resolution"
    )


# -- outputs: never half-written, never lost ------------------------------------------


def test_predict_again_into_the_same_folder_keeps_every_slide(
    cli_model, cli_cohort, tmp_path
):
    out = tmp_path / "out"
    first, second, third = cli_cohort["paths"][:3]
    assert run_cli("predict", cli_model, first, second, "--out", out).returncode == 0
    assert run_cli("predict", cli_model, third, second, "--out", out).returncode == 0
    # Another slide with the same file name gets outputs of its own.
    twin = tmp_path / "elsewhere" / first.name
    twin.parent.mkdir()
    shutil.copy(first, twin)
    result = run_cli("predict", cli_model, twin, "--out", out, "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert "with 3 slide(s) of earlier runs" in result.stderr
    document = assert_folder_agrees_with_its_index(out)
    assert sorted(s["path"] for s in document["slides"]) == sorted(
        str(p) for p in (first, second, third, twin)
    )
    stems = {Path(s["path"]): s["stem"] for s in document["slides"]}
    assert stems[first] == first.stem and stems[twin] == f"{first.stem}_2"
    # Both indexes describe the folder.
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 4


def test_concurrent_runs_on_one_folder_lose_nothing(cli_model, cli_cohort, tmp_path):
    out = tmp_path / "shared"
    paths = cli_cohort["paths"]
    command = [sys.executable, "-m", "sklearn_gastric.cli", "predict", str(cli_model)]
    runs = [
        subprocess.Popen(
            [*command, *map(str, pair), "--out", str(out), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pair in (paths[:2], paths[2:])
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    document = assert_folder_agrees_with_its_index(out)
    assert sorted(s["name"] for s in document["slides"]) == sorted(
        p.name for p in paths
    )


def _interrupt_predict(model, slides, out, delay):
    """Start predict, wait until its first record appears, wait ``delay``
    more seconds, and press Ctrl-C; return the CompletedProcess-like run."""
    run = subprocess.Popen(
        [sys.executable, "-m", "sklearn_gastric.cli", "predict", str(model)]
        + [str(s) for s in slides]
        + ["--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT
        # ignored, and Python then never raises KeyboardInterrupt: give the
        # child the default disposition, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*_prediction.json")) and time.monotonic() < deadline:
        if run.poll() is not None:
            break
        time.sleep(0.01)
    time.sleep(delay)
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    return run.returncode, stderr


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_ctrl_c_leaves_complete_outputs_and_exit_130(cli_model, cli_cohort, tmp_path):
    slides = cli_cohort["paths"] * 3  # 12 slides, most written as copies below
    copies = []
    for i, path in enumerate(slides):
        copy = tmp_path / "slides" / f"s{i:02d}_{path.name}"
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(path, copy)
        copies.append(copy)
    interrupted = 0
    for trial, delay in enumerate([0.0, 0.05, 0.15, 0.3]):
        out = tmp_path / f"out{trial}"
        status, stderr = _interrupt_predict(cli_model, copies, out, delay)
        assert status in (0, 130), stderr
        if status == 130:
            interrupted += 1
            assert "sklearn-gastric predict: interrupted" in stderr
            assert "Traceback" not in stderr
        assert_folder_agrees_with_its_index(out)
        assert not [
            p for p in out.glob("*_prediction.json") if "stem" not in p.read_text()
        ], "an unfinished claim was left"
    assert interrupted >= 2


def test_an_interrupted_lesion_map_never_appears_truncated(
    cli_model, cli_cohort, tmp_path, monkeypatch
):
    """Deterministic twin of the Ctrl-C test: the interruption lands while
    the second slide's PNG is half written."""
    from matplotlib.figure import Figure

    from sklearn_gastric.cli import main

    out = tmp_path / "out"
    first, second, third = cli_cohort["paths"][:3]
    save = Figure.savefig

    def interrupted_savefig(self, fname, **kwargs):
        # The second slide's lesion map, its first picture.
        if Path(fname).name.startswith(f".{second.stem}_lesion_map.png"):
            with open(fname, "wb") as file:
                file.write(b"\x89PNG\r\n\x1a\n half")
            raise KeyboardInterrupt
        return save(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", interrupted_savefig)
    assert main(["predict", str(cli_model), str(first), str(second), str(third),
                 "--out", str(out), "-q"]) == 130  # fmt: skip
    document = assert_folder_agrees_with_its_index(out)
    assert [s["name"] for s in document["slides"]] == [first.name]
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {
        f"{first.stem}_lesion_map.png",
        f"{first.stem}_top_tiles.png",
        f"{first.stem}_graph.png",
        f"{first.stem}_lesions.geojson",
        f"{first.stem}_prediction.json",
        "predictions.json",
    }
