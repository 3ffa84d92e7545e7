import warnings

import numpy as np
import pytest

from sklearn_gastric.io import SlideError, UnreadableTileWarning, write_pyramidal_tiff
from sklearn_gastric.preprocessing import TileBag, Tiler


@pytest.fixture(scope="module")
def numbered_slide(tmp_path_factory):
    """A lossless pyramidal TIFF whose 32x32 tiles each hold their own index."""
    rgb = np.zeros((256, 320, 3), np.uint8)
    for i in range(8):
        for j in range(10):
            rgb[32 * i : 32 * (i + 1), 32 * j : 32 * (j + 1)] = (i, j, 10 * i + j)
    path = tmp_path_factory.mktemp("bag") / "numbered.tiff"
    return write_pyramidal_tiff(rgb, path, tile_size=64, compression="deflate")


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
@pytest.mark.parametrize("batch_size", [1, 7, 80, 200])
def test_iter_batches_reads_every_tile_in_order(numbered_slide, n_jobs, batch_size):
    (bag,) = Tiler(tile_size=32).fit_transform([numbered_slide])
    order = np.random.RandomState(0).permutation(len(bag))
    bag = bag.subset(order)
    batches = list(bag.iter_batches(batch_size, n_jobs=n_jobs))
    assert [len(b) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
    tiles = np.concatenate(batches)
    assert tiles.shape == (80, 32, 32, 3) and tiles.dtype == np.uint8
    expected = np.stack([bag.read_tile(k) for k in range(len(bag))])
    np.testing.assert_array_equal(tiles, expected)
    x, y = bag.coords[:, 0] // 32, bag.coords[:, 1] // 32
    np.testing.assert_array_equal(tiles[:, 0, 0], np.stack([y, x, 10 * y + x], 1))
    tiles[0, 0, 0] = 255  # batches are writable, fresh arrays


def test_iter_batches_of_an_empty_bag_and_bad_arguments(numbered_slide):
    empty = TileBag(numbered_slide, np.zeros((0, 2)), tile_size=32)
    assert list(empty.iter_batches(4, n_jobs=2)) == []
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(empty.iter_batches(0))
    (bag,) = Tiler(tile_size=32).fit_transform([numbered_slide])
    with pytest.raises(ValueError, match="n_jobs == 0"):
        next(bag.iter_batches(4, n_jobs=0))


def _unreadable(bag, bad):
    """``bag`` whose tiles at the indices ``bad`` cannot be read."""
    slide = bag.slide
    read_region = slide.read_region
    corners = {tuple(bag.coords[index]) for index in bad}

    def failing(location, level, size):
        if tuple(location) in corners:
            raise SlideError(f"Slide {slide.name!r}: a corrupt tile")
        return read_region(location, level, size)

    slide.read_region = failing
    return bag


@pytest.mark.parametrize("n_jobs", [None, 3])
def test_read_batches_reports_the_skipped_tiles_instead_of_warning(
    numbered_slide, n_jobs
):
    (bag,) = Tiler(tile_size=32).fit_transform([numbered_slide])
    bag = _unreadable(bag.subset(np.arange(7)), {2, 3, 5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(bag.read_batches(2, n_jobs=n_jobs, on_error="skip"))
    assert [b[0].tolist() for b in batches] == [[0, 1], [], [4], [6]]
    assert [b[1].shape[0] for b in batches] == [2, 0, 1, 1]
    assert [len(b[2]) for b in batches] == [0, 2, 1, 0]
    assert batches[1][2][0] == (
        "Slide 'numbered.tiff': tile 2 at level-0 (x, y) = (64, 0) cannot be "
        "read: Slide 'numbered.tiff': a corrupt tile; the tile is skipped."
    )
    np.testing.assert_array_equal(batches[2][1][0], bag.read_tile(4))
    with pytest.raises(SlideError, match="tile 2 at level-0"):
        list(bag.read_batches(2, n_jobs=n_jobs))
    with pytest.warns(UnreadableTileWarning) as record:
        read = list(bag.iter_batches(2, on_error="skip", return_indices=True))
    assert len(record) == 3
    assert [i.tolist() for i, _ in read] == [[0, 1], [4], [6]]


@pytest.mark.parametrize(
    ("batch_size", "n_jobs", "in_flight"),
    [(1, None, 3), (1, 3, 7), (4, 2, 12), (3, 1, 9)],
)
def test_read_batches_reads_ahead(monkeypatch, batch_size, n_jobs, in_flight):
    # When the first batch reaches the caller, the reads of the next batches
    # (two at least, two tiles per reader at least) are already queued
    # behind it.
    from concurrent.futures import ThreadPoolExecutor

    from sklearn_gastric.preprocessing import _tile_bag

    submitted = []

    class CountingPool(ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(args[2])
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(_tile_bag, "ThreadPoolExecutor", CountingPool)
    image = np.arange(64 * 640 * 3, dtype=np.uint32).reshape(64, 640, 3)
    bag = TileBag(image.astype(np.uint8), [[x, 0] for x in range(0, 640, 32)], 32)
    batches = bag.read_batches(batch_size, n_jobs=n_jobs)
    next(batches)
    assert submitted == list(range(in_flight))
    rest = list(batches)
    assert submitted == list(range(len(bag)))
    assert sum(len(indices) for indices, _, _ in rest) == len(bag) - batch_size
