"""The ``predict`` output folder under hostile conditions: nothing lost,
index and report always consistent, and only the folder's own files read.

A prediction folder may be shared by a cluster's jobs, so its records and
pictures are anyone's: a record naming a file elsewhere, a FIFO, a device or
a huge file under a picture's name, records of other versions or of nobody.
A job may be stopped by SIGTERM, a disk may fill, a slide name may be too
long for the file system, another job may hang holding the folder's lock.
Each case checks the exit status, the message and that the folder, its index
and its report still agree.
"""

import base64
import csv
import dataclasses
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cli_support import assert_user_error, run_cli
from PIL import Image

from sklearn_gastric._prediction_folder import (
    LOCK_TIMEOUT_VARIABLE,
    MAX_RECORD_BYTES,
    PredictionFolder,
    write_slide_outputs,
)
from sklearn_gastric._report import MAX_FIGURE_BYTES
from sklearn_gastric.cli import main
from sklearn_gastric.utils._files import LockTimeoutError, file_lock

PNG = b"\x89PNG\r\n\x1a\n"
SECRET = b"TOP-SECRET-0123456789"
POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX files and signals")


def strict_loads(text):
    """``json.loads`` refusing the bare ``NaN``/``Infinity`` of Python's json."""

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _index(out):
    return strict_loads((out / "predictions.json").read_text())


def assert_folder_agrees_with_its_index(out):
    """Every picture is listed; every listed file exists; nothing unfinished."""
    document = _index(out)
    listed = {Path(s["lesion_map_png"]).name for s in document["slides"]}
    assert {p.name for p in out.glob("*_lesion_map.png")} == listed
    for entry in document["slides"]:
        assert (out / Path(entry["geojson"]).name).is_file()
    assert not list(out.glob(".*.part")), "a temporary file was left behind"
    claims = [p.name for p in out.glob("*_prediction.json") if '"stem"' not in _text(p)]
    assert not claims, f"unfinished claims were left: {claims}"
    return document


def _text(path):
    return path.read_text(encoding="utf-8", errors="replace")


def report_names(out):
    """The slides the report shows, and the failed ones it lists."""
    page = (out / "report.html").read_text(encoding="utf-8")
    slides = re.findall(r'<section class="slide" id="slide-\d+">\n<h2>(.*?)<a ', page)
    failed = re.findall(r'<tr><td>(.*?)</td><td class="path">', page)
    return sorted(map(html.unescape, slides)), sorted(map(html.unescape, failed))


def listed(out, file_format="json"):
    """The slides an index lists, and the failed ones, by name."""
    if file_format == "json":
        document = _index(out)
        return (
            sorted(s["name"] for s in document["slides"]),
            sorted(e["name"] for e in document["errors"]),
        )
    with open(out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return (
        sorted(r["name"] for r in rows if not r["error"]),
        sorted(r["name"] for r in rows if r["error"]),
    )


def assert_report_agrees_with_its_index(out, file_format="json"):
    assert report_names(out) == listed(out, file_format)
    return listed(out, file_format)


def embedded_pictures(out):
    page = (out / "report.html").read_text(encoding="utf-8")
    return [
        base64.b64decode(uri)
        for uri in re.findall(r'src="data:image/png;base64,([^"]*)"', page)
    ]


def _copies(paths, folder, n, prefix="s"):
    """``n`` copies of the cohort's slides, named apart."""
    folder.mkdir(exist_ok=True)
    copies = []
    for i in range(n):
        source = paths[i % len(paths)]
        copies.append(
            Path(shutil.copy(source, folder / f"{prefix}{i:02d}_{source.name}"))
        )
    return copies


def _predict(*args):
    return main(["predict", *map(str, args), "-q"])


def _blank_png(path, size=256):
    Image.fromarray(np.full((size, size, 3), 245, np.uint8)).save(path)
    return path


# -- a record the index accepts, written directly ----------------------------------


def _record(out, stem, **fields):
    """A valid slide record of ``stem`` (its pictures are for the caller)."""
    return {
        "name": f"{stem}.svs",
        "path": f"/slides/{stem}.svs",
        "classes": ["HGIN", "negative"],
        "predicted_class": "HGIN",
        "probabilities": {"HGIN": 0.75, "negative": 0.25},
        "n_tissue_tiles": 12,
        "top_tiles": [{"rank": 1, "x": 0, "y": 64, "size": 64, "score": 3.5}],
        "n_lesion_regions": 2,
        "lesion_threshold": 0.5,
        "ood_score": 0.1,
        "ood_threshold": 0.3,
        "out_of_distribution": False,
        "lesion_map_png": str(out / f"{stem}_lesion_map.png"),
        "geojson": str(out / f"{stem}_lesions.geojson"),
        "top_tiles_png": None,
        "graph_png": None,
        "model": "/models/model.sgm",
        **fields,
    }


def _write(out, stem, record):
    """Write a record file as another program (or version) would."""
    path = out / f"{stem}_prediction.json"
    path.write_text(json.dumps({"stem": stem, **record}))
    return path


# -- 2. the report embeds only the folder's own pictures -----------------------------


@POSIX
def test_the_report_embeds_only_the_folders_own_regular_pictures(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + SECRET)
    own = PNG + b"own picture"
    cases = {}

    def case(stem, note=None, **fields):
        _write(out, stem, _record(out, stem, **fields))
        cases[stem] = note

    # A record naming a file elsewhere, by absolute or relative path.
    case("outside", "refused: the record names", lesion_map_png=str(secret))
    case("relative", "refused: the record names", lesion_map_png="../secret.png")
    # The expected names, but not regular files inside the folder.
    (out / "linked_lesion_map.png").symlink_to(secret)
    case("linked", "leads out of the folder")
    (out / "zero_lesion_map.png").symlink_to("/dev/zero")
    case("zero", "leads out of the folder")
    os.mkfifo(out / "fifo_lesion_map.png")
    case("fifo", "is not a regular file")
    (out / "folder_lesion_map.png").mkdir()
    case("folder", "is not a regular file")
    with open(out / "huge_lesion_map.png", "wb") as file:
        file.write(PNG)
        file.truncate(MAX_FIGURE_BYTES + 1)  # sparse: no disk used
    case("huge", f"is larger than {MAX_FIGURE_BYTES} bytes")
    (out / "gif_lesion_map.png").write_bytes(b"GIF89a" + SECRET)
    case("gif", "is not a PNG file")
    case("gone", "missing: no 'gone_lesion_map.png' in the folder")
    # What the tool wrote is embedded, also after the folder moved, and
    # through a link that stays in the folder.
    (out / "moved_lesion_map.png").write_bytes(own)
    case("moved", lesion_map_png="/old/place/moved_lesion_map.png")
    (out / "inside_lesion_map.png").symlink_to(out / "moved_lesion_map.png")
    case("inside")

    folder = PredictionFolder(out, notify=lambda message: None)
    done = []
    worker = threading.Thread(
        target=lambda: done.append(folder.write_index("json", report=True)),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    try:
        assert done, "the report hung reading a picture"
    finally:
        if worker.is_alive():  # unblock today's reader waiting on the FIFO
            os.close(os.open(out / "fifo_lesion_map.png", os.O_WRONLY | os.O_NONBLOCK))
    assert embedded_pictures(out) == [own, own]
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert SECRET.decode() not in page
    sections = re.split(r'<section class="slide"', page)[1:]
    for stem, note in cases.items():
        (section,) = [s for s in sections if f"<h2>{stem}.svs" in s]
        if note is None:
            assert "<img" in section, stem
        else:
            assert "<img" not in section and "Lesion map: " in section, stem
            assert note in section, (stem, section)
    assert_report_agrees_with_its_index(out)


# -- 6. records of others, validated --------------------------------------------------

# Values of the wrong type for each field a record's reader uses.
_BAD_VALUES = {
    "name": [None, 5, ["a"]],
    "path": [5, ["a"], {"a": 1}],
    "classes": [5, "HGIN", [1, 2], None, {"HGIN": 1}],
    "predicted_class": [5, ["HGIN"], {}],
    "probabilities": [5, [0.5], {"HGIN": "high"}, {"HGIN": True}, None],
    "n_tissue_tiles": [None, "12", 1.5, True, -1, [1]],
    "top_tiles": [
        None,
        5,
        [5],
        [{"rank": "1", "x": 0, "y": 0, "size": 64}],
        [{"x": 0}],
        [{"rank": 1, "x": 0, "y": 0, "size": 64, "score": "hi"}],
    ],
    "n_lesion_regions": [None, "2", 2.5, False],
    "lesion_threshold": ["0.5", [0.5]],
    "ood_score": ["x", True],
    "ood_threshold": ["x", {}],
    "out_of_distribution": ["yes", 1],
    "lesion_map_png": [None, 5],
    "top_tiles_png": [5, True],
    "graph_png": [5, ["a.png"]],
    "geojson": [None, 5],
    "model": [None, 5],
    "sklearn_gastric_version": [1],
}
_REQUIRED = [
    "name", "path", "classes", "predicted_class", "probabilities",
    "n_tissue_tiles", "top_tiles", "n_lesion_regions", "lesion_map_png",
    "geojson", "model",
]  # fmt: skip


def _plant_malformed_records(out):
    """Every kind of bad record; return the names of the files planted."""
    planted = []

    def plant(stem, content):
        path = out / f"{stem}_prediction.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        planted.append(path.name)

    for field, values in _BAD_VALUES.items():
        for i, value in enumerate(values):
            stem = f"bad-{field}-{i}"
            plant(
                stem, json.dumps({"stem": stem, **_record(out, stem, **{field: value})})
            )
    for field in _REQUIRED:
        stem = f"no-{field}"
        record = _record(out, stem)
        del record[field]
        plant(stem, json.dumps({"stem": stem, **record}))
    for i, stem in enumerate([None, 5, "someone-else", "../escape"]):
        plant(f"stem-{i}", json.dumps({"stem": stem, **_record(out, "x")}))
    plant("no-stem", json.dumps(_record(out, "no-stem")))
    for i, content in enumerate(['["a", "list"]', '"text"', "5", "null", "true"]):
        plant(f"not-object-{i}", content)
    plant("garbage", bytes(range(256)) * 4)
    plant("cut", json.dumps(_record(out, "cut"))[:100])
    plant("whitespace", "  \n ")
    plant("deep", "[" * 100_000 + "]" * 100_000)
    huge = {"stem": "huge", **_record(out, "huge", name="h" * MAX_RECORD_BYTES)}
    plant("huge", json.dumps(huge))
    plant("bad-error", json.dumps({"stem": "bad-error", "error": 5, "name": "e.svs"}))
    plant(
        "bad-error-name",
        json.dumps({"stem": "bad-error-name", "error": "x", "name": 5}),
    )
    if os.name == "posix":
        os.mkfifo(out / "fifo_prediction.json")
        planted.append("fifo_prediction.json")
        (out / "outside_prediction.json").symlink_to(out.parent / "elsewhere.json")
        (out.parent / "elsewhere.json").write_text(json.dumps(_record(out, "outside")))
        planted.append("outside_prediction.json")
    (out / "folder_prediction.json").mkdir()
    planted.append("folder_prediction.json")
    return planted


def test_malformed_records_are_listed_by_name_and_skipped(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    planted = _plant_malformed_records(out)
    # Readable ones: a record of an older version with NaN (read as null),
    # another run's failure, a claim in progress (silently not listed).
    good = _record(out, "good", probabilities={"HGIN": 0.5, "negative": 0.5})
    (out / "good_prediction.json").write_text(
        json.dumps({"stem": "good", **good}).replace("0.5,", "NaN,", 1)
    )
    _write(out, "failed", {"name": "failed.svs", "path": None, "error": "bad slide"})
    (out / "running_prediction.json").write_text(
        '{"path": "/x.svs", "status": "running"}'
    )
    (out / "empty_prediction.json").write_bytes(b"")
    messages = []
    folder = PredictionFolder(out, notify=messages.append)
    started = time.perf_counter()
    folder.write_index("csv")
    _, document = folder.write_index("json", report=True)
    assert time.perf_counter() - started < 30

    assert [s["name"] for s in document["slides"]] == ["good.svs"]
    assert document["slides"][0]["probabilities"] == {"HGIN": None, "negative": 0.5}
    errors = {e["name"]: e["error"] for e in document["errors"]}
    assert errors.pop("failed.svs") == "bad slide"
    assert sorted(errors) == sorted(planted)
    for name, error in errors.items():
        assert error.startswith(f"{name}: malformed record: "), error
    # Told once per rebuild, by file name.
    assert len(messages) == 2 * len(planted)
    assert all("malformed record" in m for m in messages)
    # Index, CSV and report: all written, all strict, all in agreement.
    assert strict_loads((out / "predictions.json").read_text()) == document
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 1 + len(planted)
    assert_report_agrees_with_its_index(out)
    assert f"larger than {MAX_RECORD_BYTES} bytes" in errors["huge_prediction.json"]
    assert (
        "'n_tissue_tiles' is \"12\", not a count"
        in errors["bad-n_tissue_tiles-1_prediction.json"]
    )
    assert "no 'n_tissue_tiles'" in errors["no-n_tissue_tiles_prediction.json"]
    assert "a JSON array, not an object" in errors["not-object-0_prediction.json"]
    assert "not JSON" in errors["deep_prediction.json"]


def test_predict_on_a_folder_of_hostile_records_and_pictures(
    cli_model, cli_cohort, tmp_path
):
    """The command line end to end: a folder already holding malformed
    records, a FIFO and links under picture names; predict with --report
    --format csv must neither hang, nor fail, nor embed them."""
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + SECRET)
    _write(out, "classes", _record(out, "classes", classes=5))
    record = _record(out, "tiles")
    del record["n_tissue_tiles"]
    _write(out, "tiles", record)
    evil = _record(
        out,
        "evil",
        top_tiles_png=str(secret),
        graph_png=str(out / "evil_graph.png"),
    )
    _write(out, "evil", evil)
    if os.name == "posix":
        os.mkfifo(out / "evil_lesion_map.png")
        (out / "evil_graph.png").symlink_to("/dev/zero")
    slide = cli_cohort["paths"][0]
    result = run_cli(
        "predict", cli_model, slide, "--out", out, "--report", "--format", "csv",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name in ("classes_prediction.json", "tiles_prediction.json"):
        assert f"sklearn-gastric predict: skipped {name}: malformed record:" in (
            result.stderr
        )
    slides, failed = assert_report_agrees_with_its_index(out, "csv")
    assert slides == sorted([slide.name, "evil.svs"])
    assert failed == ["classes_prediction.json", "tiles_prediction.json"]
    pictures = embedded_pictures(out)
    assert len(pictures) == 3  # the slide's lesion map, graph and gallery
    assert all(SECRET not in p for p in pictures)


# -- 3. SIGTERM and SIGHUP stop a run as Ctrl-C does -----------------------------------


def _start_predict(model, slides, out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "sklearn_gastric.cli", "predict", str(model)]
        + [str(s) for s in slides]
        + ["--out", str(out), "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_a_record(run, out, timeout=600):
    """Until the run has written a slide's record; fails the test, rather
    than signal a run that has written nothing, when none comes (a loaded
    machine can take minutes to load torch and the model)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        if any('"stem"' in _text(p) for p in out.glob("*_prediction.json")):
            return
        time.sleep(0.01)
    raise AssertionError(
        f"no slide record in {out} after {timeout} s (exit code {run.poll()})"
    )


@POSIX
def test_sigterm_and_sighup_stop_predict_cleanly(cli_model, cli_cohort, tmp_path):
    slides = _copies(cli_cohort["paths"], tmp_path / "slides", 8)
    runs = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        out = tmp_path / signum.name
        runs[signum] = (out, _start_predict(cli_model, slides, out, "--report"))
    for signum, (out, run) in runs.items():
        _wait_for_a_record(run, out)
        run.send_signal(signum)
    for signum, (out, run) in runs.items():
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 128 + signum, stderr
        assert f"sklearn-gastric predict: terminated ({signum.name})" in stderr
        assert "Traceback" not in stderr
        document = assert_folder_agrees_with_its_index(out)
        assert 1 <= len(document["slides"]) < len(slides)
        assert_report_agrees_with_its_index(out)


_SIGNAL_SCRIPT = """
import os, signal, sys, time
import sklearn_gastric.cli as cli

def command(args):
    os.kill(os.getpid(), signal.{signal})
    time.sleep(2)
    return 0

cli._COMMANDS["info"] = command
{before}
status = cli.main(["info", "x.svs"])
print(status, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
      signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, flush=True)
"""


@POSIX
@pytest.mark.parametrize(
    "name, before, expected",
    [
        ("SIGTERM", "", "143 True False"),
        ("SIGHUP", "", "129 True False"),
        # nohup: an ignored SIGHUP stays ignored, and the command goes on.
        ("SIGHUP", "signal.signal(signal.SIGHUP, signal.SIG_IGN)", "0 True True"),
    ],
)
def test_every_command_turns_sigterm_and_sighup_into_an_interruption(
    name, before, expected
):
    script = _SIGNAL_SCRIPT.format(signal=name, before=before)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == expected, result.stderr
    if expected != "0 True True":
        assert f"sklearn-gastric info: terminated ({name})" in result.stderr
        assert "Traceback" not in result.stderr


# -- 4. the report is rebuilt with the index -------------------------------------------


def test_a_run_stopped_by_a_failing_slide_rebuilds_the_report(
    cli_model, cli_cohort, tmp_path
):
    out = tmp_path / "out"
    first, second = cli_cohort["paths"][:2]
    blank = _blank_png(tmp_path / "white.png")
    status = _predict(cli_model, first, blank, second, "--out", out, "--report")
    assert status == 2
    assert assert_report_agrees_with_its_index(out) == ([first.name], ["white.png"])
    assert_folder_agrees_with_its_index(out)


def test_concurrent_runs_with_reports_agree_with_the_index(
    cli_model, cli_cohort, tmp_path
):
    out = tmp_path / "shared"
    paths = cli_cohort["paths"]
    runs = [
        _start_predict(cli_model, pair, out, "--report")
        for pair in (paths[:2], paths[2:])
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    slides, _ = assert_report_agrees_with_its_index(out)
    assert slides == sorted(p.name for p in paths)
    assert_folder_agrees_with_its_index(out)


# -- 5. names too long, outputs that cannot be written, a full disk --------------------


def test_slide_names_too_long_for_the_file_system_are_shortened(
    cli_model, cli_cohort, tmp_path
):
    source = cli_cohort["paths"][0]
    slides = tmp_path / "slides"
    slides.mkdir()
    long = [
        Path(shutil.copy(source, slides / ("s" * 245 + ".tiff"))),
        Path(shutil.copy(source, slides / ("s" * 244 + "t.tiff"))),
        Path(
            shutil.copy(
                source, slides / ("\N{LATIN SMALL LETTER E WITH ACUTE}" * 120 + ".tiff")
            )
        ),
    ]
    out = tmp_path / "out"
    # Again, into the same folder: the same stems, no namesakes.
    for file_format in ("csv", "json"):
        status = _predict(
            cli_model, *long, "--out", out, "--report", "--format", file_format
        )
        assert status == 0
        slides, _ = assert_report_agrees_with_its_index(out, file_format)
        assert slides == sorted(p.name for p in long)
        assert all(len(os.fsencode(p.name)) <= 255 for p in out.iterdir())
        assert len(list(out.glob("*_prediction.json"))) == 3
        assert len(list(out.glob("*_lesion_map.png"))) == 3
    assert_folder_agrees_with_its_index(out)
    assert len(embedded_pictures(out)) == 3 * 3


def test_an_output_that_cannot_be_written_fails_only_its_slide(
    cli_model, cli_cohort, tmp_path, capsys
):
    first, second = cli_cohort["paths"][:2]
    for skip in (True, False):
        out = tmp_path / ("skip" if skip else "stop")
        out.mkdir()
        blocked = out / f"{first.stem}_lesion_map.png"
        blocked.mkdir()  # a folder where the lesion map goes
        extra = ["--skip-errors"] if skip else []
        assert _predict(cli_model, first, second, "--out", out, *extra) == 2
        stderr = capsys.readouterr().err
        message = f"Slide '{first.name}': cannot write '{blocked}' (Is a directory)."
        assert message in stderr and "Traceback" not in stderr
        assert ("1 of 2 slide(s) skipped" in stderr) == skip
        document = _index(out)
        assert [e["error"] for e in document["errors"]] == [message]
        expected = [second.name] if skip else []
        assert [s["name"] for s in document["slides"]] == expected
        assert not list(out.glob(".*.part"))
        # The failed slide keeps its error record, and no picture.
        assert sorted(p.name for p in out.glob(f"{first.stem}_*")) == [
            blocked.name,
            f"{first.stem}_prediction.json",
        ]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 12 MiB tmpfs: a device that can be filled up for real."""
    if os.name != "posix" or shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk, leave=0):
    """Fill the device but ``leave`` bytes; return the filler file."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "ab") as file:
        try:
            while True:
                file.write(chunk)
                file.flush()
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def test_a_full_disk_stops_the_run_with_a_named_error(
    cli_model, cli_cohort, tmp_path, tiny_disk, capsys
):
    out = tiny_disk / "out"
    first, second, third = cli_cohort["paths"][:3]
    assert _predict(cli_model, first, "--out", out) == 0
    capsys.readouterr()
    # Room for a claim and an index, not for a lesion map.
    filler = _fill(tiny_disk, leave=64 << 10)
    status = _predict(cli_model, second, third, "--out", out, "--skip-errors")
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert (
        f"sklearn-gastric predict: Slide '{second.name}': no space left on device "
        f"writing '{out / second.stem}_lesion_map.png'"
    ) in stderr
    assert "Traceback" not in stderr
    document = assert_folder_agrees_with_its_index(out)
    assert [s["name"] for s in document["slides"]] == [first.name]
    assert not document["errors"]
    # No room at all: even the claim cannot be written.
    filler.unlink()
    filler = _fill(tiny_disk)
    assert _predict(cli_model, second, "--out", out) == 2
    stderr = capsys.readouterr().err
    assert (
        f"no space left on device writing '{out / second.stem}_prediction.json'"
        in stderr
    )
    assert "Traceback" not in stderr
    assert_folder_agrees_with_its_index(out)
    # Room again: nothing the failures left stands in the way.
    filler.unlink()
    assert _predict(cli_model, second, third, "--out", out) == 0
    document = assert_folder_agrees_with_its_index(out)
    assert len(document["slides"]) == 3


# -- 7. a lock held by a hung run ------------------------------------------------------


@POSIX
def test_a_held_lock_is_waited_for_a_bounded_time(cli_model, cli_cohort, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".predictions.lock"
    slide = cli_cohort["paths"][0]
    with file_lock(lock):  # a hung run
        result = run_cli(
            "predict", cli_model, slide, "--out", out,
            env={LOCK_TIMEOUT_VARIABLE: "2"}, timeout=120,
        )  # fmt: skip
    assert_user_error(result, "predict", f"waiting for the lock '{lock}'")
    assert f"gave up after 2 s waiting for the lock '{lock}'" in result.stderr
    assert not (out / "predictions.json").exists()
    # The slide's record is there: the next run's index lists it.
    other = cli_cohort["paths"][1]
    assert _predict(cli_model, other, "--out", out) == 0
    assert sorted(s["name"] for s in _index(out)["slides"]) == [slide.name, other.name]


def test_a_bad_lock_timeout_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(LOCK_TIMEOUT_VARIABLE, "soon")
    assert _predict(tmp_path / "model.sgm", tmp_path / "s.svs", "--out", tmp_path) == 2
    assert (
        f"{LOCK_TIMEOUT_VARIABLE}='soon': give the seconds" in capsys.readouterr().err
    )


@POSIX
def test_file_lock_tells_and_gives_up(tmp_path):
    lock = tmp_path / ".lock"
    told = []
    with file_lock(lock):
        started = time.monotonic()
        with pytest.raises(LockTimeoutError, match=f"waiting for the lock '{lock}'"):
            with file_lock(lock, timeout=0.5, on_wait=told.append, notice_after=0.1):
                pass
        assert 0.5 <= time.monotonic() - started < 5
    assert told == [lock]
    with file_lock(lock, timeout=0.5):  # released: had at once
        pass


# -- strict JSON -----------------------------------------------------------------------


def test_non_finite_numbers_are_written_as_null(cli_model, cli_cohort, tmp_path):
    from sklearn_gastric import load_model
    from sklearn_gastric.pipeline import predict_slides

    (prediction,) = predict_slides(load_model(cli_model), cli_cohort["paths"][1:2])
    scores = prediction.graph.scores
    scores[0], scores[1] = np.inf, np.nan
    proba = np.array([np.nan, np.inf, 0.1, -np.inf])[: len(prediction.classes)]
    prediction = dataclasses.replace(
        prediction, proba=proba, ood_score=np.nan, ood_threshold=np.inf
    )
    out = tmp_path / "out"
    out.mkdir()
    record = write_slide_outputs(prediction, out, "nan")
    folder = PredictionFolder(out)
    folder.write_record("nan", {**record, "model": str(cli_model)})
    folder.write_index("csv")
    _, document = folder.write_index("json", report=True)
    files = [*out.glob("*.json"), *out.glob("*.geojson")]
    assert len(files) == 3
    for path in files:
        strict_loads(path.read_text())
    (slide,) = document["slides"]
    assert slide["ood_score"] is None and slide["ood_threshold"] is None
    assert None in slide["probabilities"].values()
    assert [t["score"] for t in slide["top_tiles"]][:2] == [None, None]
    assert_report_agrees_with_its_index(out)
