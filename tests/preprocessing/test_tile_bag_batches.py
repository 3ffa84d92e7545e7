import numpy as np
import pytest

from sklearn_gastric.io import write_pyramidal_tiff
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
