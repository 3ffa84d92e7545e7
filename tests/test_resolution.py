"""One resolution through the whole method: the same tissue scanned at 20x
(0.5 µm/px) and at 40x (0.25 µm/px) gives the same patches, tiles (in µm),
classes, probabilities and lesion maps, through the library and the CLI."""

import json
import warnings

import numpy as np
import pytest
from cli_support import TINY_TRAIN, assert_user_error, run_cli

from sklearn_gastric import GCNSlideClassifier
from sklearn_gastric.datasets import SYNTHETIC_MPP, make_gastric_slides
from sklearn_gastric.io import Slide, SlideError, open_slide, write_pyramidal_tiff
from sklearn_gastric.pipeline import find_step, make_gastric_pipeline, predict_slides
from sklearn_gastric.preprocessing import Tiler
from sklearn_gastric.segmentation import sample_patches
from sklearn_gastric.visualization import LesionMapDisplay

# Lossless, so that the two scans hold exactly the same tissue; the CLI
# tests below use JPEG tiles, as scanners write.
COMPRESSION = "deflate"


def scanned_at_40x(rgb):
    """The same tissue at twice the magnification: each pixel becomes 2x2."""
    return np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)


@pytest.fixture(scope="module")
def tissue():
    """Two 256 px synthetic slides (carcinoma, negative) and their masks."""
    arrays, labels, masks = make_gastric_slides(
        2,
        size=256,
        classes=["carcinoma", "negative"],
        lesion_fraction=0.15,
        random_state=3,
    )
    return arrays, labels, masks


def test_a_slide_can_be_given_its_resolution():
    rgb = np.full((64, 64, 3), 200, dtype=np.uint8)
    assert open_slide(rgb).mpp is None
    assert open_slide(rgb, mpp=0.25).mpp == (0.25, 0.25)
    slide = Slide(rgb, name="scan")
    stated = open_slide(slide, mpp=(0.5, 0.5))
    assert stated.mpp == (0.5, 0.5) and stated.name == "scan"
    assert slide.mpp is None  # the slide given is left as it was
    with pytest.raises(SlideError, match=r"Slide 'scan': mpp must be positive"):
        open_slide(slide, mpp=0)


def test_patches_of_one_physical_size_from_a_20x_and_a_40x_scan(tissue):
    arrays, _, _ = tissue
    at_20x = Slide(arrays[1], name="20x", mpp=0.5)
    at_40x = Slide(scanned_at_40x(arrays[1]), name="40x", mpp=0.25)
    drawn = {
        slide.name: sample_patches(
            [slide], [None], tile_size=32, n_patches=6, mpp=0.5, random_state=0
        )
        for slide in (at_20x, at_40x)
    }
    patches_20x, masks_20x, labels_20x, _ = drawn["20x"]
    patches_40x, masks_40x, labels_40x, _ = drawn["40x"]
    assert patches_20x.shape == patches_40x.shape == (6, 32, 32, 3)
    # A 2x2 block of one colour area-averages to that colour: exactly equal.
    np.testing.assert_array_equal(patches_40x, patches_20x)
    np.testing.assert_array_equal(masks_40x, masks_20x)
    # In level-0 pixels (the old behaviour) the 40x patches hold a quarter
    # of the tissue: not the same patches.
    level_0, *_ = sample_patches(
        [at_40x], [None], tile_size=32, n_patches=6, random_state=0
    )
    assert not np.array_equal(level_0, patches_20x)


def test_a_mixed_cohort_gives_patches_of_one_size(tissue):
    arrays, labels, masks = tissue
    i = int(np.flatnonzero(np.asarray(labels) != "negative")[0])
    slides = [
        Slide(arrays[i], name="20x", mpp=0.5),
        Slide(scanned_at_40x(arrays[i]), name="40x", mpp=0.25),
    ]
    lesions = [masks[i], scanned_at_40x(masks[i])]
    patches, patch_masks, patch_labels, groups = sample_patches(
        slides,
        lesions,
        [labels[i]] * 2,
        tile_size=32,
        n_patches=8,
        mpp=0.5,
        random_state=0,
    )
    assert patches.shape[1:] == (32, 32, 3) and patch_masks.shape[1:] == (32, 32)
    assert set(groups.tolist()) == {0, 1}
    # Lesion patches cover at least min_lesion of their patch at 0.5 µm/px.
    lesion = patch_labels != "negative"
    assert lesion[groups == 0].any() and lesion[groups == 1].any()
    assert (patch_masks[lesion].mean(axis=(1, 2)) >= 0.1).all()


@pytest.mark.parametrize("slide_mpp", [0.3, 0.25, 0.45])
def test_lesion_masks_stay_on_their_pixels_at_any_scale(slide_mpp):
    # A blue square lesion on pink tissue, scanned at slide_mpp; patches at
    # 0.5 µm/px (a non-integer factor for 0.3 and 0.45).
    side = 320
    rgb = np.empty((side, side, 3), dtype=np.uint8)
    rgb[:] = (230, 150, 200)
    mask = np.zeros((side, side), dtype=bool)
    mask[100:220, 90:230] = True
    rgb[mask] = (60, 40, 160)
    slide = Slide(rgb, name="square", mpp=slide_mpp)
    patches, masks, labels, _ = sample_patches(
        [slide],
        [mask],
        ["HGIN"],
        tile_size=32,
        n_patches=12,
        positive_fraction=1.0,
        min_tissue=0.0,
        mpp=0.5,
        random_state=0,
    )
    lesion = labels == "HGIN"
    assert lesion.sum() >= 4
    for patch, patch_mask in zip(patches[lesion], masks[lesion]):
        # The share of lesion in each patch pixel, from its colour: blue
        # minus red is 100 on lesion, -30 on tissue, mixed at the borders.
        share = (patch[..., 2].astype(float) - patch[..., 0] + 30) / 130
        assert patch_mask[share >= 0.75].all()
        assert not patch_mask[share <= 0.25].any()
        assert (share >= 0.75).any()


@pytest.fixture(scope="module")
def resolution_pipeline(tiny_segmenter):
    """The tiny segmenter's pipeline at 0.5 µm/px, fitted on 20x slides."""
    arrays, labels, _ = make_gastric_slides(
        8, size=256, classes=["negative", "carcinoma"], random_state=5
    )
    slides = [
        Slide(a, name=f"train-{i}", mpp=SYNTHETIC_MPP) for i, a in enumerate(arrays)
    ]
    pipe = make_gastric_pipeline(
        tiny_segmenter,
        tile_size=32,
        mpp=SYNTHETIC_MPP,
        min_tissue=0.5,
        k=4,
        classifier=GCNSlideClassifier(max_epochs=20, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipe.fit(slides, labels)


@pytest.fixture(scope="module")
def scans(tissue, tmp_path_factory):
    """Each tissue written as a pyramidal TIFF at 0.5 and at 0.25 µm/px."""
    folder = tmp_path_factory.mktemp("scans")
    arrays, _, _ = tissue
    paths = {}
    for i, rgb in enumerate(arrays):
        paths[i] = (
            write_pyramidal_tiff(
                rgb, folder / f"t{i}_20x.tiff", mpp=0.5, compression=COMPRESSION
            ),
            write_pyramidal_tiff(
                scanned_at_40x(rgb),
                folder / f"t{i}_40x.tiff",
                mpp=0.25,
                compression=COMPRESSION,
            ),
        )
    return paths


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_the_same_tissue_at_20x_and_40x_predicts_the_same(resolution_pipeline, scans):
    for at_20x, at_40x in scans.values():
        p20, p40 = predict_slides(resolution_pipeline, [at_20x, at_40x])
        assert p40.slide.mpp == pytest.approx((0.25, 0.25), rel=1e-6)
        # Tiles of one physical size: 40x coordinates are twice the 20x ones.
        np.testing.assert_array_equal(p40.bag.coords, 2 * p20.bag.coords)
        assert p40.bag.footprint == 2 * p20.bag.footprint == 64
        # The segmenter sees the same pixels (a 2x2 block area-averages to
        # its colour).
        np.testing.assert_array_equal(p40.bag.read_tile(0), p20.bag.read_tile(0))
        np.testing.assert_array_equal(p40.top_coords, 2 * p20.top_coords)
        assert p40.predicted_class == p20.predicted_class
        np.testing.assert_allclose(p40.proba, p20.proba, atol=0.05)
        # Lesion maps agree once the 40x one is brought to the 20x grid.
        map20 = p20.lesion_map.probability > p20.lesion_map.threshold
        map40 = p40.lesion_map.probability > p40.lesion_map.threshold
        scale = map40.shape[0] // map20.shape[0]
        assert map40.shape == (map20.shape[0] * scale, map20.shape[1] * scale)
        assert _iou(map20, map40[::scale, ::scale]) >= 0.9
        # Both read at 0.5 µm/px; the records say so.
        r20, r40 = p20.to_dict(), p40.to_dict()
        assert r20["read_mpp"] == pytest.approx(0.5)
        assert r40["read_mpp"] == pytest.approx(0.5)
        assert (r20["mpp"], r40["mpp"]) == pytest.approx((0.5, 0.25))
        assert r20["tile_size"] == r40["tile_size"] == 32


def test_the_scale_bar_is_the_same_length_in_microns(resolution_pipeline, scans):
    at_20x, at_40x = scans[0]
    p20, p40 = predict_slides(resolution_pipeline, [at_20x, at_40x])
    displays = [LesionMapDisplay.from_prediction(p, max_size=256) for p in (p20, p40)]
    labels = [display.scale_bar_.txt_label.get_text() for display in displays]
    # A fifth of the slide's 128 µm, rounded: 20 µm on both, drawn over
    # 40 pixels of the 20x slide and 80 of the 40x one (its level-0 pixels).
    assert labels[0] == labels[1] == "20 µm"
    assert [display.mpp for display in displays] == pytest.approx([0.5, 0.25])


def test_a_slide_without_a_resolution_is_named(resolution_pipeline, tissue):
    arrays, _, _ = tissue
    with pytest.raises(ValueError, match=r"Slide 'no-mpp': cannot cut tiles at mpp"):
        predict_slides(resolution_pipeline, [Slide(arrays[0], name="no-mpp")])
    (prediction,) = predict_slides(
        resolution_pipeline, [open_slide(arrays[0], name="stated", mpp=0.5)]
    )
    assert prediction.to_dict()["read_mpp"] == pytest.approx(0.5)


# -- the command line ---------------------------------------------------------


@pytest.fixture(scope="module")
def mpp_model(cli_cohort, tmp_path_factory):
    """The tiny CLI model, trained with --mpp 0.5."""
    out = tmp_path_factory.mktemp("mpp_model") / "model.sgm"
    result = run_cli(
        "train",
        cli_cohort["slides"],
        cli_cohort["labels"],
        "--annotations",
        cli_cohort["annotations"],
        "--out",
        out,
        "--mpp",
        "0.5",
        *TINY_TRAIN,
    )
    assert result.returncode == 0, result.stderr
    assert "no --mpp" not in result.stderr
    return out


@pytest.fixture(scope="module")
def cli_scans(cli_cohort, tmp_path_factory):
    """Two cohort slides at 0.5 µm/px and again at 0.25 µm/px, plus one PNG
    copy (a file that states no resolution)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("cli_scans")
    pairs = []
    for path in cli_cohort["paths"][:2]:
        rgb = open_slide(path).read_region((0, 0), 0, open_slide(path).dimensions)
        pairs.append(
            (
                write_pyramidal_tiff(rgb, folder / f"{path.stem}_20x.tiff", mpp=0.5),
                write_pyramidal_tiff(
                    scanned_at_40x(rgb), folder / f"{path.stem}_40x.tiff", mpp=0.25
                ),
            )
        )
        png = folder / f"{path.stem}.png"
        Image.fromarray(rgb).save(png)
    return {"pairs": pairs, "png": png}


def _records(out, *stems):
    return [json.loads((out / f"{s}_prediction.json").read_text()) for s in stems]


def test_predict_reads_20x_and_40x_scans_alike(mpp_model, cli_scans, tmp_path):
    paths = [p for pair in cli_scans["pairs"] for p in pair]
    out = tmp_path / "out"
    result = run_cli("predict", mpp_model, *paths, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "does not know the resolution" not in result.stderr
    for at_20x, at_40x in cli_scans["pairs"]:
        r20, r40 = _records(out, at_20x.stem, at_40x.stem)
        assert r40["predicted_class"] == r20["predicted_class"]
        for name, p in r20["probabilities"].items():
            assert r40["probabilities"][name] == pytest.approx(p, abs=0.05)
        assert [(t["x"], t["y"]) for t in r40["top_tiles"]] == [
            (2 * t["x"], 2 * t["y"]) for t in r20["top_tiles"]
        ]
        assert r40["top_tiles"][0]["size"] == 2 * r20["top_tiles"][0]["size"]
        assert (r20["read_mpp"], r40["read_mpp"]) == pytest.approx((0.5, 0.5))
        assert (r20["mpp"], r40["mpp"]) == pytest.approx((0.5, 0.25))
        # The GeoJSON regions lie on the same tissue: level-0 of each slide.
        regions = [
            json.loads((out / f"{stem}_lesions.geojson").read_text())["features"]
            for stem in (at_20x.stem, at_40x.stem)
        ]
        assert len(regions[0]) == len(regions[1])
        for f20, f40 in zip(*regions):
            x20 = np.asarray(f20["geometry"]["coordinates"][0], dtype=float)
            x40 = np.asarray(f40["geometry"]["coordinates"][0], dtype=float)
            assert x40.min(axis=0) == pytest.approx(2 * x20.min(axis=0), abs=4)
            assert x40.max(axis=0) == pytest.approx(2 * x20.max(axis=0), abs=4)


def test_predict_names_a_slide_without_a_resolution(mpp_model, cli_scans, tmp_path):
    png = cli_scans["png"]
    result = run_cli("predict", mpp_model, png, "--out", tmp_path / "a")
    assert_user_error(
        result,
        "predict",
        f"Slide {png.name!r}: its file does not state a usable resolution",
    )
    assert "--assume-mpp" in result.stderr
    out = tmp_path / "b"
    result = run_cli(
        "predict", mpp_model, png, "--out", out, "--assume-mpp", "0.5", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    (record,) = _records(out, png.stem)
    assert (record["mpp"], record["read_mpp"]) == pytest.approx((0.5, 0.5))


def test_a_model_without_a_resolution_still_predicts_with_a_warning(
    cli_model, cli_scans, tmp_path
):
    png = cli_scans["png"]
    result = run_cli("predict", cli_model, png, "--out", tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "does not know the resolution it learnt at" in result.stderr
    (record,) = _records(tmp_path, png.stem)
    assert record["read_level"] == 0 and record["read_mpp"] is None


def test_the_model_file_keeps_its_resolution(mpp_model):
    from sklearn_gastric import load_model

    pipe = load_model(mpp_model)
    assert find_step(pipe, Tiler).mpp == 0.5
    with open(mpp_model, "rb") as file:
        import zipfile

        manifest = json.loads(zipfile.ZipFile(file).read("manifest.json"))
    assert manifest["metadata"]["mpp"] == 0.5


def test_info_says_what_a_model_would_read(mpp_model, cli_scans):
    _, at_40x = cli_scans["pairs"][0]
    result = run_cli("info", at_40x, "--model", mpp_model, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["mpp"] == pytest.approx([0.25, 0.25])
    assert info["tile_mpp"] == 0.5 and info["tile_size"] == 32
    assert info["tile_level"] == 0 and info["tile_footprint"] == 64
    assert info["tile_read_mpp"] == pytest.approx(0.5)


def test_a_reused_segmenter_keeps_its_resolution(mpp_model, cli_cohort, tmp_path):
    common = [
        "train",
        cli_cohort["slides"],
        cli_cohort["labels"],
        "--segmenter",
        mpp_model,
        "--out",
        tmp_path / "m.sgm",
    ]
    result = run_cli(*common, "--mpp", "0.25")
    assert_user_error(result, "train", "was trained at 0.5 µm/px")
    assert not (tmp_path / "m.sgm").exists()
