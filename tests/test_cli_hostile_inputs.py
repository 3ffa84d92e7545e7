"""Hostile input files and settings given to the command line, run as a user
runs it: resolutions no slide can have, files that are no regular file, slide
names in ``labels.csv`` that lead out of the slides folder, and torch thread
counts that are no count. Library-level checks of the thread settings close
the file.

Every command runs in a subprocess with a timeout; bad input exits with
status 2 and a ``sklearn-gastric COMMAND: ...`` message naming it.
"""

import json
import os

import numpy as np
import pytest
import tifffile
from cli_support import assert_user_error, run_cli

from sklearn_gastric import PatchSegmenter
from sklearn_gastric.io import write_pyramidal_tiff
from sklearn_gastric.utils._cpu import (
    MAX_TORCH_THREADS,
    THREADS_VARIABLE,
    default_torch_threads,
    torch_threads,
)


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _write_aperio(path, mpp_text):
    """A 256-pixel tiled TIFF whose Aperio description states ``MPP``."""
    rgb = np.full((256, 256, 3), 240, np.uint8)
    rgb[:128, :128] = (200, 120, 180)
    description = (
        "Aperio Image Library v10.0.51\r\n256x256 [0,0 256x256] (128x128) "
        f"JPEG/RGB Q=30|AppMag = 20|MPP = {mpp_text}"
    )
    tifffile.imwrite(
        path, rgb, tile=(128, 128), photometric="rgb", description=description,
        metadata=None,
    )  # fmt: skip
    return path


def _small_slide(path):
    return write_pyramidal_tiff(np.full((64, 64, 3), 200, np.uint8), path)


# -- resolutions ------------------------------------------------------------------


@pytest.mark.parametrize("stated", ["0", "-0.5", "inf"])
def test_info_on_a_resolution_no_slide_can_have(tmp_path, stated):
    path = _write_aperio(tmp_path / "odd.svs", stated)
    result = run_cli("info", path, "--json", "--tile-size", "64", timeout=120)
    assert result.returncode == 0, result.stderr
    info = _strict_json(result.stdout)
    assert info["mpp"] is None
    assert info["tiles"] == 16 and info["tile_footprint"] == 64
    assert "UserWarning: Slide 'odd.svs': the resolution its file states" in (
        result.stderr
    )
    assert f"openslide.mpp-x = '{float(stated):g}'" in result.stderr


def test_predict_a_slide_stating_a_zero_resolution(cli_model, tmp_path):
    path = _write_aperio(tmp_path / "zero.svs", "0")
    out = tmp_path / "out"
    result = run_cli("predict", cli_model, path, "--out", out, "--quiet", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Slide 'zero.svs': the resolution its file states" in result.stderr
    assert (out / "predictions.json").is_file()


@pytest.mark.parametrize("value", ["1e-300", "inf", "1e6"])
def test_mpp_option_outside_the_resolutions_a_slide_can_have(tmp_path, value):
    slide = _small_slide(tmp_path / "s.tiff")
    result = run_cli("info", slide, "--mpp", value, timeout=120)
    assert_user_error(
        result, "info", "argument --mpp: must be a resolution from 0.05 to 10"
    )


# -- files that are no regular file ---------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_slide_is_named_and_never_blocks(tmp_path):
    fifo = tmp_path / "pipe.svs"
    os.mkfifo(fifo)
    # A process that opened the FIFO would wait for a writer: the timeout
    # turns that into a failure.
    result = run_cli("info", fifo, timeout=60)
    assert_user_error(
        result, "info", f"Slide 'pipe.svs': {str(fifo)!r} is a FIFO (named pipe), not"
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_slide_is_named():
    result = run_cli("info", "/dev/zero", timeout=60)
    assert_user_error(
        result, "info", "Slide 'zero': '/dev/zero' is a character device, not a"
    )


def test_a_symlink_loop_slide_is_named(tmp_path):
    loop = tmp_path / "loop.svs"
    loop.symlink_to(loop)
    result = run_cli("info", loop, timeout=60)
    assert_user_error(result, "info", "Slide 'loop.svs': file ")
    assert "is a symlink loop" in result.stderr


# -- labels.csv: slides only from SLIDES_DIR ------------------------------------------


@pytest.fixture
def slides_dir(tmp_path):
    """SLIDES_DIR with one slide; a slide beside it, outside."""
    folder = tmp_path / "slides"
    folder.mkdir()
    _small_slide(folder / "inside.tiff")
    _small_slide(tmp_path / "outside.tiff")
    return folder


def _train(slides_dir, rows):
    labels = slides_dir.parent / "labels.csv"
    # The row after the bad one names a missing slide: before the fix, the
    # bad row passed and the run stopped there, with another message.
    labels.write_text(
        "slide,label\ninside.tiff,negative\n" + "".join(f"{r},HGIN\n" for r in rows)
        + "missing.tiff,LGIN\n"
    )  # fmt: skip
    annotations = slides_dir.parent / "annotations"
    annotations.mkdir(exist_ok=True)
    out = slides_dir.parent / "model.sgm"
    result = run_cli(
        "train", slides_dir, labels, "--annotations", annotations, "--out", out,
        timeout=120,
    )  # fmt: skip
    assert not out.exists()
    return result


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_a_labels_row_leading_out_of_the_slides_folder_is_refused(slides_dir, how):
    outside = slides_dir.parent / "outside.tiff"
    if how == "symlink":
        (slides_dir / "link.tiff").symlink_to(outside)
    name = {"dot-dot": "../outside.tiff", "absolute": str(outside)}.get(
        how, "link.tiff"
    )
    result = _train(slides_dir, [name])
    assert_user_error(
        result,
        "train",
        f"labels.csv', line 3: slide {name!r} leads to {str(outside)!r}, outside "
        f"the slides folder {str(slides_dir)!r}",
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_labels_row_naming_a_fifo_is_refused(slides_dir):
    os.mkfifo(slides_dir / "pipe.tiff")
    result = _train(slides_dir, ["pipe.tiff"])
    assert_user_error(
        result, "train", "line 3: slide file '" + str(slides_dir / "pipe.tiff")
    )
    assert "is a FIFO (named pipe), not a slide file." in result.stderr


# -- torch threads ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-5", "0", "1.5", "100000"])
def test_a_threads_variable_that_is_no_count_exits_2(tmp_path, value):
    # demo checks its options, then sets the threads before any work.
    result = run_cli(
        "demo", "--out", tmp_path / "demo", env={THREADS_VARIABLE: value}, timeout=120
    )
    assert_user_error(
        result,
        "demo",
        f"{THREADS_VARIABLE} must be an integer from 1 to {MAX_TORCH_THREADS} "
        f"(torch threads); got {value!r}.",
    )
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("value", ["99999999999999999999", "1025", "0", "2.0"])
def test_a_threads_option_that_is_no_count_exits_2(tmp_path, value):
    result = run_cli("demo", "--out", tmp_path / "demo", "--torch-threads", value)
    assert_user_error(
        result,
        "demo",
        "argument --torch-threads: the count must be an integer from 1 to "
        f"{MAX_TORCH_THREADS} (torch threads); got {value!r}.",
    )
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "value", ["abc", "-5", "0", "1.5", "100000", "9" * 5000, " ", "4"]
)
def test_the_threads_variable_in_the_library(monkeypatch, value):
    monkeypatch.setenv(THREADS_VARIABLE, value)
    if value.strip() in ("", "4"):  # unset (blank) or a count
        assert default_torch_threads() >= 1
        return
    with pytest.raises(ValueError, match=rf"^{THREADS_VARIABLE} must be an integer"):
        default_torch_threads()


@pytest.mark.parametrize("value", [0, MAX_TORCH_THREADS + 1, 10**20, 1.5, None])
def test_torch_never_gets_a_count_out_of_bounds(value):
    with pytest.raises(ValueError, match="^torch_threads must be an integer from 1"):
        with torch_threads(value):
            pass


def test_an_estimator_with_too_many_threads_is_refused():
    rng = np.random.RandomState(0)
    patches = rng.randint(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    masks = np.zeros((4, 16, 16), np.float32)
    segmenter = PatchSegmenter(
        base_channels=2, depth=1, max_epochs=1, torch_threads=10**6
    )
    with pytest.raises(
        ValueError, match="torch_threads must be an integer from 1 to 1024"
    ):
        segmenter.fit(patches, masks)
