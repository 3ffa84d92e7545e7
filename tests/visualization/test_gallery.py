"""The top-K tile gallery and the slide graph display."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sklearn_gastric.graph import SlideGraph  # noqa: E402
from sklearn_gastric.io import Slide  # noqa: E402
from sklearn_gastric.pipeline import predict_slides  # noqa: E402
from sklearn_gastric.visualization import (  # noqa: E402
    SlideGraphDisplay,
    TileGalleryDisplay,
)
from sklearn_gastric.visualization._drawing import outlined_tile  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def prediction(fitted_pipeline):
    pipe, slides = fitted_pipeline
    (prediction,) = predict_slides(pipe, [Slide(slides[1], name="synthetic-1")])
    return prediction


def test_gallery_shows_the_top_tiles_as_the_segmenter_read_them(prediction):
    display = TileGalleryDisplay.from_prediction(prediction, n_cols=3)
    assert len(display.axes_) == 4
    bag = prediction.bag
    rows = [bag.coords.tolist().index(xy) for xy in prediction.top_coords.tolist()]
    for ax, row in zip(display.axes_, rows):
        expected = outlined_tile(bag.read_tile(row), bag.prob_maps[row], 0.5, "black")
        np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    x, y = prediction.top_coords[0]
    assert display.axes_[0].get_title().startswith("#1  score ")
    assert display.axes_[0].get_title().endswith(f"(x, y) = ({x}, {y})")
    # 4 tiles on rows of 3: the two unused axes of the second row are hidden.
    assert display.figure_.axes[-1].axison is False


def test_gallery_burns_the_outline_into_the_tile_as_the_inset_does():
    tiles = np.full((1, 8, 8, 3), 200, np.uint8)
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :2, :2] = 0.9
    display = TileGalleryDisplay(tiles, [1.0], prob_maps=maps).plot(outline_color="red")
    assert not display.axes_[0].lines
    np.testing.assert_array_equal(
        display.axes_[0].images[0].get_array(),
        outlined_tile(tiles[0], maps[0], 0.5, "red"),
    )


def test_gallery_of_a_prediction_without_top_tiles_is_an_error(prediction):
    from dataclasses import replace

    bare = replace(prediction, top_tiles=None, graph=None)
    with pytest.raises(ValueError, match="'synthetic-1': no top-K tile to show"):
        TileGalleryDisplay.from_prediction(bare)


def test_graph_display_places_nodes_on_the_slide():
    graph = SlideGraph(
        np.eye(3),
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]],
        scores=[3.0, 2.0, 1.0],
        coords=[[0, 0], [64, 0], [64, 128]],
        name="hand-made",
    )
    display = SlideGraphDisplay(graph).plot()
    np.testing.assert_array_equal(
        display.nodes_.get_offsets(), [[0, 0], [64, 0], [64, -128]]
    )
    assert len(display.edges_.get_segments()) == 2
    assert display.ax_.get_title() == ("hand-made: graph over the top-3 tiles, 2 edges")
    with pytest.raises(ValueError, match="'graph': the graph has no node coords"):
        SlideGraphDisplay(SlideGraph(np.eye(2), np.zeros((2, 2)))).plot()


def _leaves(box, kind):
    """Every offsetbox of type ``kind`` under ``box``, depth first."""
    found = [box] if isinstance(box, kind) else []
    for child in box.get_children():
        found += _leaves(child, kind)
    return found


def test_outlined_tile_paints_the_inner_boundary_of_the_lesion():
    tile = np.full((8, 8, 3), 200, np.uint8)
    prob_map = np.zeros((4, 4), np.float32)
    prob_map[:2, :2] = 0.9
    outlined = outlined_tile(tile, prob_map, 0.5, "black")
    # The 2x2 map block is the 4x4 top-left pixels; its one-pixel ring is
    # painted (the tile's edge counts as a border), its 2x2 inside is not.
    ring = np.zeros((8, 8), dtype=bool)
    ring[:4, :4] = True
    ring[1:3, 1:3] = False
    np.testing.assert_array_equal(outlined[ring], 0)
    np.testing.assert_array_equal(outlined[~ring], 200)
    np.testing.assert_array_equal(tile, 200)  # the input is not modified
    np.testing.assert_array_equal(outlined_tile(tile, None, 0.5, "black"), tile)


def test_outlined_tile_widens_the_outline_with_the_tile_side():
    tile = np.full((256, 256, 3), 200, np.uint8)
    prob_map = np.zeros((4, 4), np.float32)
    prob_map[1:3, 1:3] = 0.9  # pixels 64..191 on both axes
    outlined = outlined_tile(tile, prob_map, 0.5, (1.0, 0.0, 0.0))
    # Two pixels per 256: a ring of width 2 inside the block; 8-connected
    # corners count as inside, as the erosion follows 4-neighbours.
    painted = np.all(outlined == (255, 0, 0), axis=-1)
    assert painted.sum() == 128 * 128 - 124 * 124
    assert painted[64, 64] and painted[65, 65] and not painted[66, 66]
    assert not painted[63, 64] and not painted[128, 128]


def test_lesion_map_inset_gallery_shows_the_top_tiles_left_of_the_map(prediction):
    from matplotlib.offsetbox import OffsetImage, TextArea

    from sklearn_gastric.visualization import LesionMapDisplay

    display = LesionMapDisplay.from_prediction(prediction, gallery=True)
    bag, coords = prediction.bag, prediction.top_coords
    rows = [bag.coords.tolist().index(xy) for xy in coords.tolist()]
    images = _leaves(display.gallery_, OffsetImage)
    assert len(images) == len(coords) == 4
    for image, row in zip(images, rows):
        expected = outlined_tile(bag.read_tile(row), bag.prob_maps[row], 0.5, "black")
        np.testing.assert_array_equal(image.get_data(), expected)
    texts = [t.get_text() for t in _leaves(display.gallery_, TextArea)]
    assert texts == ["top-4 tiles, as segmented", "#1", "#2", "#3", "#4"]
    # Drawn at 0.9 inch a side, left of the map's axes.
    figure = display.figure_
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    gallery = display.gallery_.get_window_extent(renderer)
    assert gallery.x1 <= display.ax_.get_window_extent(renderer).x0
    extent = images[0].get_window_extent(renderer)
    assert extent.width == pytest.approx(0.9 * figure.dpi, abs=1)


def test_lesion_map_gallery_is_optional(prediction):
    from sklearn_gastric.visualization import LesionMapDisplay

    assert LesionMapDisplay.from_prediction(prediction).gallery_ is None
    display = LesionMapDisplay.from_prediction(
        prediction, gallery=True, show_gallery=False
    )
    assert display.tiles is not None and display.gallery_ is None


def test_lesion_map_gallery_from_a_bag_and_its_errors():
    from sklearn_gastric.preprocessing import TileBag
    from sklearn_gastric.visualization import LesionMapDisplay
    from sklearn_gastric.visualization._gallery import read_tiles_at

    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:, 32:] = 120
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[1] = 0.9
    bag = TileBag(
        Slide(pixels, name="two-tiles"),
        [[0, 0], [32, 0]],
        32,
        scores=[0.0, 14.4],
        prob_maps=maps,
    )
    display = LesionMapDisplay.from_bag(bag, k=1, gallery=True)
    (tile,) = display.tiles
    np.testing.assert_array_equal(tile, 120)
    np.testing.assert_array_equal(display.tile_prob_maps, maps[1:])
    with pytest.raises(
        ValueError, match=r"'two-tiles': no tile of the bag at .*\[5, 5\]"
    ):
        read_tiles_at(bag, [[5, 5]])
    display.tiles = np.concatenate([display.tiles] * 2)
    with pytest.raises(
        ValueError, match="'two-tiles': 2 gallery tiles for 1 top-K tiles"
    ):
        display.plot()
