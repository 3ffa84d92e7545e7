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
        np.testing.assert_array_equal(ax.images[0].get_array(), bag.read_tile(row))
    x, y = prediction.top_coords[0]
    assert display.axes_[0].get_title().startswith("#1  score ")
    assert display.axes_[0].get_title().endswith(f"(x, y) = ({x}, {y})")
    # 4 tiles on rows of 3: the two unused axes of the second row are hidden.
    assert display.figure_.axes[-1].axison is False


def test_gallery_outlines_pixels_above_the_threshold():
    tiles = np.full((1, 8, 8, 3), 200, np.uint8)
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :2, :2] = 0.9
    display = TileGalleryDisplay(tiles, [1.0], prob_maps=maps).plot()
    (line,) = display.axes_[0].lines
    xs, ys = line.get_data()
    # The 2x2 map block is the 4x4 top-left pixels: its border runs on the
    # pixel edges at -0.5 and 3.5.
    assert xs.min() == pytest.approx(-0.5) and xs.max() == pytest.approx(3.5)
    assert ys.min() == pytest.approx(-0.5) and ys.max() == pytest.approx(3.5)


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
