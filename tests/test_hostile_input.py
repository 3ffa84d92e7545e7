"""Hostile input: every bad file, array, feature or label gets an error (or a
documented warning) that names the slide and the cause, never a crash."""

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from sklearn_gastric.baselines import (
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
)
from sklearn_gastric.graph import (
    GCNSlideClassifier,
    PearsonGraphBuilder,
    SlideGraph,
    TopKSelector,
)
from sklearn_gastric.io import SlideError, open_slide, write_pyramidal_tiff
from sklearn_gastric.preprocessing import (
    OtsuFilter,
    StainNormalizer,
    TileBag,
    Tiler,
    UnreadableTileWarning,
)
from sklearn_gastric.segmentation import PatchSegmenter

TILE = 128
CORRUPT_INDEX = 1  # the TIFF tile at level-0 (128, 0); tiles are row-major


def _smooth_rgb(height, width, seed=0):
    """A smooth pink-purple image: compresses well, has tissue everywhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [150 + 40 * np.sin(xx / 37.0), 70 + 30 * np.cos(yy / 23.0), 160 + 0 * xx],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def good_tiff(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    return write_pyramidal_tiff(
        _smooth_rgb(512, 512), folder / "good.tiff", tile_size=TILE, quality=90
    )


@pytest.fixture(scope="module")
def corrupt_tiff(good_tiff, tmp_path_factory):
    """A copy of ``good_tiff`` whose level-0 tile 1 holds zeros, not JPEG."""
    import tifffile

    path = tmp_path_factory.mktemp("corrupt") / "corrupt.tiff"
    shutil.copy(good_tiff, path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.tilewidth == TILE
        offset = page.dataoffsets[CORRUPT_INDEX]
        count = page.databytecounts[CORRUPT_INDEX]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * count)
    return path


# -- files ------------------------------------------------------------------


def test_missing_file_names_the_slide(tmp_path):
    missing = tmp_path / "absent.svs"
    with pytest.raises(FileNotFoundError, match=r"Slide 'absent.svs': no such file"):
        open_slide(missing)
    with pytest.raises(FileNotFoundError, match=r"'absent.svs'"):
        Tiler().transform([str(missing)])


def test_empty_file_names_the_slide(tmp_path):
    (tmp_path / "empty.svs").touch()
    with pytest.raises(SlideError, match=r"Slide 'empty.svs': the file .* is empty"):
        Tiler(tile_size=64).transform([tmp_path / "empty.svs"])


def test_truncated_tiff_names_the_slide(good_tiff, tmp_path):
    data = good_tiff.read_bytes()
    truncated = tmp_path / "half.tiff"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        SlideError, match=r"Slide 'half.tiff': .*not in a format.*corrupt or truncated"
    ):
        open_slide(truncated)


def test_jpeg_renamed_svs_names_the_slide(tmp_path):
    path = tmp_path / "photo.svs"
    Image.fromarray(_smooth_rgb(64, 64)).save(path, format="JPEG")
    with pytest.raises(SlideError, match=r"Slide 'photo.svs': .*not in a format"):
        open_slide(path)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_plain_image_names_the_slide(tmp_path, suffix):
    full = tmp_path / f"full.{suffix}"
    Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    ).save(full)
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    slide = open_slide(cut)  # PIL reads the header only
    with pytest.raises(
        SlideError, match=rf"Slide 'cut.{suffix}': reading the region .* truncated"
    ):
        slide.read_region((0, 0), 0, (64, 64))


def test_input_files_are_left_unchanged(corrupt_tiff, tiny_segmenter):
    before = corrupt_tiff.read_bytes()
    bags = Tiler(tile_size=TILE).transform([corrupt_tiff])
    with pytest.warns(UnreadableTileWarning):
        tiny_segmenter.set_params(on_error="skip").transform(bags)
    tiny_segmenter.set_params(on_error="raise")
    assert corrupt_tiff.read_bytes() == before
    assert sorted(p.name for p in corrupt_tiff.parent.iterdir()) == ["corrupt.tiff"]


def test_a_slide_whose_file_moved_or_changed_after_pickling(good_tiff, tmp_path):
    import pickle
    import socket

    path = tmp_path / "moving.tiff"
    shutil.copy(good_tiff, path)
    payload = pickle.dumps(open_slide(path))  # what a joblib/dask worker gets
    moved = path.rename(tmp_path / "elsewhere.tiff")
    with pytest.raises(
        FileNotFoundError,
        match=rf"Slide 'moving.tiff': no such file .* on host '{socket.gethostname()}'",
    ):
        pickle.loads(payload).read_region((0, 0), 0, (16, 16))
    path.write_bytes(moved.read_bytes()[:1000])
    with pytest.raises(SlideError, match=r"'moving.tiff': the file .* changed since"):
        pickle.loads(payload).read_region((0, 0), 0, (16, 16))


# -- a corrupt tile inside a good slide ---------------------------------------


def test_corrupt_tile_error_names_slide_and_tile_and_the_slide_recovers(
    good_tiff, corrupt_tiff
):
    (bag,) = Tiler(tile_size=TILE).transform([corrupt_tiff])
    (reference,) = Tiler(tile_size=TILE).transform([good_tiff])
    assert bag.coords[CORRUPT_INDEX].tolist() == [128, 0]
    message = r"Slide 'corrupt.tiff': tile 1 at level-0 \(x, y\) = \(128, 0\)"
    with pytest.raises(SlideError, match=message + " cannot be read: .*JPEG"):
        bag.read_tile(CORRUPT_INDEX)
    # OpenSlide leaves a handle that failed in an error state: the slide must
    # reopen it, so the next tiles still read, and read right.
    for index in (2, 0, 5):
        np.testing.assert_array_equal(bag.read_tile(index), reference.read_tile(index))
    with pytest.raises(SlideError, match=message):
        next(bag.iter_batches(4))


@pytest.mark.parametrize("n_jobs", [1, 4])
def test_iter_batches_skips_the_corrupt_tile_with_a_warning(
    good_tiff, corrupt_tiff, n_jobs
):
    (bag,) = Tiler(tile_size=TILE).transform([corrupt_tiff])
    (reference,) = Tiler(tile_size=TILE).transform([good_tiff])
    with pytest.warns(UnreadableTileWarning) as record:
        batches = list(
            bag.iter_batches(3, n_jobs=n_jobs, on_error="skip", return_indices=True)
        )
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert "'corrupt.tiff'" in messages[0] and "(128, 0)" in messages[0]
    assert "skipped" in messages[0]
    indices = np.concatenate([i for i, _ in batches])
    expected = [i for i in range(len(bag)) if i != CORRUPT_INDEX]
    assert indices.tolist() == expected
    # The other tiles, read by threads sharing the failed handle, are intact.
    pixels = np.concatenate([b for _, b in batches])
    want = np.stack([reference.read_tile(i) for i in expected])
    np.testing.assert_array_equal(pixels, want)
    assert [len(b) for _, b in batches] == [2, 3, 3, 3, 3, 1]


def test_iter_batches_rejects_an_unknown_on_error(corrupt_tiff):
    (bag,) = Tiler(tile_size=TILE).transform([corrupt_tiff])
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        next(bag.iter_batches(4, on_error="ignore"))


def test_segmenter_skips_or_raises_on_a_corrupt_tile(
    good_tiff, corrupt_tiff, tiny_segmenter
):
    bags = Tiler(tile_size=TILE).transform([corrupt_tiff])
    with pytest.raises(SlideError, match=r"'corrupt.tiff': tile 1 at .*\(128, 0\)"):
        tiny_segmenter.transform(bags)
    skipping = tiny_segmenter.set_params(on_error="skip", reader_threads=2)
    try:
        with pytest.warns(UnreadableTileWarning, match=r"'corrupt.tiff'.*\(128, 0\)"):
            (out,) = skipping.transform(bags)
        (reference,) = skipping.transform(Tiler(tile_size=TILE).transform([good_tiff]))
    finally:
        tiny_segmenter.set_params(on_error="raise", reader_threads=None)
    keep = np.arange(len(reference)) != CORRUPT_INDEX
    np.testing.assert_array_equal(out.coords, reference.coords[keep])
    # The skipped tile shifts the others into other batches, and CPU kernels
    # may round differently for another batch composition: equal to float32
    # precision, not bit for bit.
    for column in ("features", "scores", "patch_proba", "prob_maps"):
        np.testing.assert_allclose(
            getattr(out, column), getattr(reference, column)[keep], rtol=1e-5, atol=1e-6
        )


def test_segmenter_rejects_an_unknown_on_error(tiny_segmenter, good_tiff):
    bags = Tiler(tile_size=TILE).transform([good_tiff])
    with pytest.raises(ValueError, match="on_error"):
        PatchSegmenter(on_error="ignore").fit(np.zeros((2, 16, 16, 3), np.uint8), None)
    tiny_segmenter.on_error = "ignore"
    try:
        with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
            tiny_segmenter.transform(bags)
    finally:
        tiny_segmenter.on_error = "raise"


def test_otsu_tile_mode_skips_the_corrupt_tile(corrupt_tiff):
    bags = Tiler(tile_size=TILE).transform([corrupt_tiff])
    with pytest.raises(SlideError, match=r"'corrupt.tiff': tile 1 "):
        OtsuFilter(mode="tile").transform(bags)
    with pytest.warns(UnreadableTileWarning, match=r"'corrupt.tiff'.*\(128, 0\)"):
        (kept,) = OtsuFilter(mode="tile", on_error="skip").transform(bags)
    assert len(kept) == len(bags[0]) - 1
    assert [128, 0] not in kept.coords.tolist()
    assert np.all(kept.tissue_fraction >= 0.7)
    # mode="slide" reads the lower level only: the corrupt tile is no matter.
    (by_view,) = OtsuFilter(mode="slide").transform(bags)
    assert len(by_view) == len(bags[0])


# -- arrays and geometry ------------------------------------------------------


def test_slide_smaller_than_a_tile():
    small = np.full((100, 300, 3), 200, np.uint8)
    with pytest.raises(ValueError, match=r"Slide 'array\(100x300\)' is smaller than"):
        Tiler(tile_size=128).transform([small])


@pytest.mark.parametrize(
    "array, cause",
    [
        (np.zeros((64, 64, 4), np.uint8), r"shape \(H, W, 3\).*\(64, 64, 4\)"),
        (np.zeros((64, 64, 3), np.uint16), "uint8 RGB; got dtype uint16"),
        (np.zeros((64, 64), np.uint8), r"shape \(H, W, 3\)"),
    ],
    ids=["rgba", "uint16", "gray"],
)
def test_rgba_16bit_and_gray_arrays_are_refused(array, cause):
    with pytest.raises(SlideError, match=r"Slide 'array\(64x64\)': .*" + cause):
        Tiler(tile_size=32).transform([array])
    with pytest.raises(SlideError, match=cause):
        StainNormalizer(target=array).fit()
    with pytest.raises(ValueError, match="patches must be RGB uint8"):
        PatchSegmenter().fit(array[None], np.zeros((1, 64, 64)))


def test_sixteen_bit_tiffs(tmp_path):
    """A stripped 16-bit TIFF is refused; a tiled one reads through OpenSlide
    (libtiff's RGBA interface), each channel brought to 8 bits."""
    import tifffile

    deep = np.random.default_rng(0).integers(0, 2**16, (512, 512, 3), dtype=np.uint16)
    stripped = tmp_path / "deep.tiff"
    tifffile.imwrite(stripped, deep, photometric="rgb")
    with pytest.raises(SlideError, match=r"Slide 'deep.tiff': .*not in a format"):
        open_slide(stripped)
    tiled = tmp_path / "deep_tiled.tiff"
    tifffile.imwrite(tiled, deep, photometric="rgb", tile=(256, 256))
    pixels = open_slide(tiled).read_region((0, 0), 0, (512, 512)).astype(int)
    assert np.abs(pixels - deep // 257).max() <= 1


def test_all_white_slide(tiny_segmenter):
    white = np.full((256, 256, 3), 255, np.uint8)
    with pytest.warns(UserWarning, match=r"'blank'.*cannot be estimated"):
        (normalised,) = StainNormalizer(target=_smooth_rgb(128, 128)).fit_transform(
            [open_slide(white, name="blank")]
        )
    bags = OtsuFilter(mode="tile").transform(
        Tiler(tile_size=64).transform([normalised])
    )
    assert len(bags[0]) == 0
    (segmented,) = tiny_segmenter.transform(bags)
    assert segmented.features.shape == (0, 8)
    with pytest.raises(ValueError, match="Slide 'blank': no tissue tile"):
        TopKSelector(k=5).transform([segmented])
    with pytest.raises(ValueError, match="Slide 'blank': no tissue tile"):
        PearsonGraphBuilder().transform([segmented])


# -- features and labels ------------------------------------------------------


def _bag(name, rng, n=6, d=4, bad=None):
    features = rng.normal(size=(n, d))
    scores = rng.random(n)
    if bad == "features":
        features[2, 1] = np.nan
    elif bad == "scores":
        scores[0] = np.inf
    return TileBag(
        open_slide(np.zeros((8, 8, 3), np.uint8), name=name),
        np.zeros((n, 2), int),
        8,
        features=features,
        scores=scores,
        patch_proba=rng.dirichlet(np.ones(4), n),
    )


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_features_are_named(value):
    rng = np.random.default_rng(0)
    bag = _bag("s1", rng)
    bag.features[1, 0] = value
    with pytest.raises(ValueError, match=r"Slide 's1': 'features' contains NaN"):
        PearsonGraphBuilder().transform([bag])
    with pytest.raises(ValueError, match=r"Slide 's1': 'features' contains NaN"):
        PooledFeatureClassifier().fit([bag, _bag("s2", rng)], ["a", "b"])
    with pytest.raises(ValueError, match=r"Graph 'g': features contain NaN"):
        SlideGraph(bag.features, np.zeros((6, 6)), name="g")
    bag.scores[0] = value
    with pytest.raises(ValueError, match=r"Slide 's1': 'scores' contains NaN"):
        TopKSelector().transform([bag])


def test_nan_features_written_into_a_graph_after_fit():
    rng = np.random.default_rng(0)
    graphs = [
        SlideGraph(rng.normal(size=(3, 4)), np.zeros((3, 3)), name=f"g{i}")
        for i in range(4)
    ]
    clf = GCNSlideClassifier(hidden_units=4, max_epochs=2, random_state=0)
    clf.fit(graphs, ["a", "b", "a", "b"])
    graphs[2].features[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Graph 'g2': features contain NaN"):
        clf.predict(graphs)


def test_labels_of_the_wrong_length():
    rng = np.random.default_rng(0)
    bags = [_bag(f"s{i}", rng) for i in range(4)]
    graphs = PearsonGraphBuilder().transform(bags)
    message = "X has 4 slides but y has 3 labels"
    with pytest.raises(ValueError, match=message):
        GCNSlideClassifier(max_epochs=1).fit(graphs, ["a", "b", "a"])
    with pytest.raises(ValueError, match=message):
        PooledFeatureClassifier().fit(bags, ["negative", "HGIN", "HGIN"])
    with pytest.raises(ValueError, match=message):
        ProportionThresholdClassifier().fit(bags, ["negative", "HGIN", "HGIN"])
    patches = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(
        ValueError, match=r"PatchSegmenter: X has 4 patches but y has 2 labels"
    ):
        PatchSegmenter(depth=2).fit(patches, np.zeros((4, 16, 16)), labels=[0, 1])


def test_unknown_labels_at_score_time_count_as_errors():
    """``predict`` only returns classes seen in fit; ``score`` with a label
    never seen counts it as wrong, as every scikit-learn classifier does."""
    rng = np.random.default_rng(0)
    bags = [_bag(f"s{i}", rng) for i in range(6)]
    y = np.array(["negative", "HGIN"] * 3)
    graphs = PearsonGraphBuilder().transform(bags)
    clf = GCNSlideClassifier(hidden_units=4, max_epochs=2, random_state=0)
    clf.fit(graphs, y)
    predicted = clf.predict(graphs)
    assert set(predicted) <= {"negative", "HGIN"}
    unknown = np.where(predicted == y, y, "carcinoma")
    assert clf.score(graphs, unknown) == pytest.approx(np.mean(predicted == y))
    assert clf.score(graphs, ["unseen"] * 6) == 0.0
    pooled = PooledFeatureClassifier().fit(bags, y)
    assert pooled.score(bags, ["unseen"] * 6) == 0.0
    with pytest.raises(ValueError, match=r"labels \['weird'\].*not in severity"):
        ProportionThresholdClassifier().fit(bags, ["weird", "HGIN"] * 3)


def test_gcn_fit_with_one_class_only():
    rng = np.random.default_rng(0)
    graphs = PearsonGraphBuilder().transform([_bag(f"s{i}", rng) for i in range(3)])
    with pytest.raises(
        ValueError,
        match=r"GCNSlideClassifier: fit needs at least two classes; got only 'HGIN'\.$",
    ):
        GCNSlideClassifier(max_epochs=1).fit(graphs, ["HGIN"] * 3)


def test_no_warning_on_clean_input(good_tiff, tiny_segmenter):
    # Tiles of the training patches' size: another size is warned about.
    bags = Tiler(tile_size=tiny_segmenter.patch_size_).transform([good_tiff])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (out,) = tiny_segmenter.set_params(on_error="skip").transform(bags)
    tiny_segmenter.set_params(on_error="raise")
    assert len(out) == len(bags[0])


# -- missing labels, n_jobs, devices ------------------------------------------------


def _slide_fits():
    """``fit(labels)`` of every estimator that learns from labels."""
    rng = np.random.default_rng(0)
    bags = [_bag(f"s{i}", rng) for i in range(4)]
    graphs = PearsonGraphBuilder().transform(bags)
    patches = np.zeros((4, 16, 16, 3), np.uint8)
    masks = np.zeros((4, 16, 16))
    return {
        "GCNSlideClassifier": lambda y: GCNSlideClassifier(max_epochs=1).fit(graphs, y),
        "PooledFeatureClassifier": lambda y: PooledFeatureClassifier().fit(bags, y),
        "ProportionThresholdClassifier": lambda y: ProportionThresholdClassifier().fit(
            bags, y
        ),
        "PatchSegmenter": lambda y: PatchSegmenter(depth=2, max_epochs=1).fit(
            patches, masks, y
        ),
    }


@pytest.mark.parametrize("missing", [None, float("nan"), np.float32("nan")])
@pytest.mark.parametrize(
    "name",
    [
        "GCNSlideClassifier",
        "PooledFeatureClassifier",
        "ProportionThresholdClassifier",
        "PatchSegmenter",
    ],
)
def test_a_missing_label_is_named_by_its_position(name, missing):
    fit = _slide_fits()[name]
    unit = "patch" if name == "PatchSegmenter" else "slide"
    labels = ["negative", "HGIN", missing, "HGIN"]
    with pytest.raises(ValueError, match=rf"{name}: the label of {unit} 2 is missing"):
        fit(labels)
    # A list of numbers with a NaN, and an array of them, too.
    with pytest.raises(ValueError, match=rf"the label of {unit} 1 is missing"):
        fit(np.array([0.0, np.nan, 1.0, 1.0]))


def test_labels_of_mixed_kinds_and_none_at_all():
    rng = np.random.default_rng(0)
    graphs = PearsonGraphBuilder().transform([_bag(f"s{i}", rng) for i in range(4)])
    clf = GCNSlideClassifier(max_epochs=1)
    with pytest.raises(ValueError, match=r"y mixes strings and other labels \('a'"):
        clf.fit(graphs, ["a", 1, "b", 2])
    with pytest.raises(
        ValueError, match=r"GCNSlideClassifier: y is None; fit needs one label per"
    ):
        clf.fit(graphs, None)
    with pytest.raises(ValueError, match="got a single label"):
        clf.fit(graphs, "HGIN")


N_JOBS_ESTIMATORS = [
    StainNormalizer,
    OtsuFilter,
    TopKSelector,
    PearsonGraphBuilder,
    PatchSegmenter,
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
]


@pytest.mark.parametrize("estimator", N_JOBS_ESTIMATORS, ids=lambda e: e.__name__)
def test_n_jobs_zero_is_refused_in_fit(estimator):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(
        InvalidParameterError,
        match=rf"'n_jobs' parameter of {estimator.__name__} must be .* Got 0 instead",
    ):
        estimator(n_jobs=0).fit([], [])
    estimator(n_jobs=-1).set_params(n_jobs=2)  # the other joblib values stay valid


@pytest.mark.parametrize(
    "device, match",
    [
        ("potato", "device='potato' is not a torch device"),
        ("cuda:7", "device='cuda:7'"),
        ("meta", "device='meta' is a 'meta' device, which sklearn-gastric does"),
    ],
)
def test_bad_devices_are_refused_in_fit(device, match):
    rng = np.random.default_rng(0)
    graphs = PearsonGraphBuilder().transform([_bag(f"s{i}", rng) for i in range(4)])
    with pytest.raises(ValueError, match=rf"GCNSlideClassifier: {match}"):
        GCNSlideClassifier(device=device).fit(graphs, ["a", "b"] * 2)
    patches = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=rf"PatchSegmenter: {match}"):
        PatchSegmenter(device=device, depth=2).fit(patches, np.zeros((4, 16, 16)))


# -- slides too large to read in bounded time --------------------------------------


def test_a_grid_of_too_many_tiles_is_refused():
    # 30,000 x 30,000 pixels that take no memory: one value, broadcast.
    vast = np.broadcast_to(np.uint8(200), (30_000, 30_000, 3))
    slide = open_slide(vast, name="vast")
    with pytest.raises(ValueError, match=r"Slide 'vast': a grid of 7500x7500 tiles"):
        Tiler(tile_size=4).fit_transform([slide])
    assert len(Tiler(tile_size=512).fit_transform([slide])[0]) == 58**2


def test_views_of_a_slide_without_a_pyramid_are_bounded(monkeypatch):
    import sklearn_gastric.io._view as view_module
    from sklearn_gastric.io import low_resolution_view

    slide = open_slide(_smooth_rgb(2400, 1600), name="flat")
    assert slide.level_dimensions == ((1600, 2400), (400, 600))
    monkeypatch.setattr(view_module, "MAX_VIEW_READ_PIXELS", 300_000)
    # A coarse view reads the 400x600 level, within the bound.
    view, downsample = low_resolution_view(slide, 8)
    assert view.shape == (300, 200, 3) and downsample == 8
    for read in (
        lambda: low_resolution_view(slide, 2),
        lambda: slide.get_thumbnail(800),
        lambda: OtsuFilter().fit_transform(Tiler(tile_size=8).fit_transform([slide])),
    ):
        with pytest.raises(
            SlideError,
            match=r"Slide 'flat': a view at downsample .* level 0 \(1600x2400",
        ):
            read()


# -- corrupt tiles of a single-level file in slide mode ---------------------------


@pytest.fixture(scope="module")
def corrupt_flat_tiff(tmp_path_factory):
    """A single-level TIFF (no pyramid, so slide mode reads level 0) whose
    tile at level-0 (128, 0) holds zeros, not JPEG; and its good original."""
    import tifffile

    folder = tmp_path_factory.mktemp("flat")
    good = write_pyramidal_tiff(
        _smooth_rgb(512, 512), folder / "flat.tiff", tile_size=TILE, levels=1
    )
    path = folder / "corrupt_flat.tiff"
    shutil.copy(good, path)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        offset = tif.pages[0].dataoffsets[CORRUPT_INDEX]
        count = tif.pages[0].databytecounts[CORRUPT_INDEX]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * count)
    return good, path


def test_slide_mode_names_the_corrupt_tile_or_skips_it(corrupt_flat_tiff):
    good, corrupt = corrupt_flat_tiff
    tiler = Tiler(tile_size=64)
    with pytest.raises(
        SlideError,
        match=r"Slide 'corrupt_flat.tiff': the file's tile at level-0 "
        r"\(x, y\) = \(128, 0\), 128x128 px, cannot be read",
    ):
        OtsuFilter(min_tissue=0).transform(tiler.transform([corrupt]))
    with pytest.warns(UnreadableTileWarning, match=r"\(128, 0\), 128x128 px"):
        (skipped,) = OtsuFilter(min_tissue=0, on_error="skip").transform(
            tiler.transform([corrupt])
        )
    (reference,) = OtsuFilter(min_tissue=0).transform(tiler.transform([good]))
    # The corrupt file tile counts as glass; every other grid tile is as in
    # the good file.
    inside = (
        (reference.coords[:, 0] >= 128)
        & (reference.coords[:, 0] < 256)
        & (reference.coords[:, 1] < 128)
    )
    np.testing.assert_array_equal(skipped.coords, reference.coords)
    assert np.all(skipped.tissue_fraction[inside] == 0)
    np.testing.assert_allclose(
        skipped.tissue_fraction[~inside], reference.tissue_fraction[~inside]
    )


def test_a_plain_image_that_cannot_be_decoded_is_named_as_a_region(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_smooth_rgb(600, 600)).save(path)
    path.write_bytes(path.read_bytes()[:20_000])
    bags = Tiler(tile_size=64).transform([path])
    with pytest.raises(SlideError, match=r"Slide 'cut.png': reading the region at"):
        OtsuFilter().transform(bags)
    with pytest.warns(UnreadableTileWarning, match="the region counts as glass"):
        (bag,) = OtsuFilter(on_error="skip").transform(bags)
    assert len(bag) == 0
