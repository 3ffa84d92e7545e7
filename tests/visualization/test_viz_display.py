import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from sklearn_gastric.graph import (
    GCNSlideClassifier,
    SlideGraph,
    TopKSelector,
)
from sklearn_gastric.graph._confidence import OOD_WARNING
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.visualization import LesionMapDisplay, lesion_map


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def bag():
    maps = np.zeros((4, 4, 4), dtype=np.float32)
    maps[1, :2, 2:] = 0.9
    maps[2] = 0.3
    maps[3, 3, 3] = 0.6
    slide = Slide(np.full((64, 96, 3), 220, dtype=np.uint8), name="hand-made")
    return TileBag(
        slide,
        [[0, 0], [32, 0], [64, 0], [32, 32]],
        32,
        scores=maps.sum(axis=(1, 2)),
        prob_maps=maps,
    )


def test_from_bag_draws_map_tiles_and_title(bag, tmp_path):
    display = LesionMapDisplay.from_bag(
        bag, k=3, classes=["negative", "HGIN"], proba=[0.25, 0.75]
    )
    assert display.ax_.get_title() == "hand-made: HGIN\nnegative 0.25, HGIN 0.75"
    assert display.figure_ is display.ax_.figure
    # Top 3 by score: tile 2 (4.8), tile 1 (3.6), tile 3 (0.6).
    assert [r.get_xy() for r in display.tiles_] == [(64, 0), (32, 0), (32, 32)]
    assert all(r.get_width() == 32 for r in display.tiles_)
    assert [t.get_text() for t in display.ax_.texts] == ["1", "2", "3"]
    assert display.edges_ is None
    # Only the pixels above the 0.5 threshold are painted: the 0.9 block of
    # tile 1 and the 0.6 pixel of tile 3; tile 2's 0.3 and every 0 stay clear.
    alpha = display.overlay_.get_array()[..., 3]
    expected = np.zeros((8, 12), dtype=bool)
    expected[:2, 6:8] = True
    expected[7, 7] = True
    np.testing.assert_array_equal(alpha > 0, expected)
    assert display.overlay_.get_extent() == [0, 96, 64, 0]
    assert display.image_.get_extent() == [0, 96, 64, 0]
    assert display.image_.get_array().shape == (64, 96, 3)
    assert len(display.contours_) == 2
    assert display.colorbar_ is not None
    path = tmp_path / "display.png"
    display.figure_.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_from_bag_with_graph_draws_its_edges(bag):
    graph = SlideGraph(
        np.eye(3),
        [[0, 1, 1], [1, 0, 0], [1, 0, 0]],
        scores=[3.0, 2.0, 1.0],
        coords=[[64, 0], [32, 0], [0, 0]],
        name="hand-made",
    )
    display = LesionMapDisplay.from_bag(
        bag, graph=graph, colorbar=False, show_edges=True
    )
    assert display.colorbar_ is None
    assert [r.get_xy() for r in display.tiles_] == [(64, 0), (32, 0), (0, 0)]
    segments = [s.tolist() for s in display.edges_.get_segments()]
    assert segments == [[[80, 16], [48, 16]], [[80, 16], [16, 16]]]
    assert display.ax_.get_title() == "hand-made"


def test_edges_are_optional_and_off_by_default(bag):
    graph = SlideGraph(
        np.eye(2), [[0, 1], [1, 0]], scores=[2.0, 1.0], coords=[[64, 0], [32, 0]]
    )
    display = LesionMapDisplay.from_bag(bag, graph=graph)
    assert display.edges_ is None
    assert len(display.tiles_) == 2
    labels = [t.get_text() for t in display.legend_.get_texts()]
    assert labels == ["lesion p > 0.5", "top-2 tiles (rank)"]


def test_overlay_alpha_grows_with_probability_above_threshold():
    from matplotlib import colormaps

    from sklearn_gastric.visualization._drawing import overlay_rgba

    maps = np.array([[[0.0, 0.5], [0.75, 1.0]]], dtype=np.float32)
    bag = TileBag(np.zeros((2, 4, 3), np.uint8), [[0, 0]], 2, prob_maps=maps)
    result = lesion_map(bag, 0.5)
    rgba = overlay_rgba(result, colormaps["autumn_r"], (0.2, 0.8))
    # Not covered (the right half), 0 and exactly the threshold: clear;
    # 0.75 is half-way from the threshold to 1, so half-way in opacity.
    np.testing.assert_allclose(
        rgba[..., 3], [[0.0, 0.0, 0.0, 0.0], [0.5, 0.8, 0.0, 0.0]], atol=1e-6
    )
    np.testing.assert_allclose(rgba[1, 1, :3], colormaps["autumn_r"](1.0)[:3])


def test_scale_bar_in_microns_when_the_slide_has_mpp(bag):
    from sklearn_gastric.visualization._drawing import nice_length

    assert [nice_length(v) for v in (0.9, 1, 4.99, 19, 250, 7300)] == [
        0.5,
        1,
        2,
        10,
        200,
        5000,
    ]
    with_mpp = bag.replace(slide=Slide(np.full((64, 96, 3), 220, np.uint8), mpp=0.5))
    display = LesionMapDisplay.from_bag(with_mpp, k=0)
    # 96 px at 0.5 µm is 48 µm wide: a fifth is 9.6, rounded down to 5 µm.
    assert display.scale_bar_.txt_label.get_text() == "5 µm"
    assert LesionMapDisplay.from_bag(bag, k=0).scale_bar_ is None


def test_out_of_distribution_slide_has_the_warning_in_its_title(bag):
    display = LesionMapDisplay(
        lesion_map(bag),
        np.full((64, 96, 3), 220, np.uint8),
        classes=["negative", "HGIN"],
        proba=[0.0, 1.0],
        out_of_distribution=True,
    ).plot()
    title = display.ax_.get_title()
    assert title.startswith(OOD_WARNING + "\n")
    assert title.endswith("hand-made: HGIN\nnegative 0.00, HGIN 1.00")


def test_plot_on_given_axes_and_options(bag):
    fig, (left, right) = plt.subplots(1, 2)
    display = LesionMapDisplay.from_bag(bag, k=None, ax=right, show_regions=False)
    assert display.ax_ is right and display.figure_ is fig
    assert display.tiles_ == [] and display.contours_ == []
    again = display.plot(ax=left, colorbar=False)
    assert again is display and display.ax_ is left


def test_from_bag_errors(bag):
    with pytest.raises(TypeError, match="expects a TileBag"):
        LesionMapDisplay.from_bag([bag])
    with pytest.raises(ValueError, match=r"Slide 'hand-made'.*no 'scores'"):
        LesionMapDisplay.from_bag(bag.replace(scores=None), k=2)
    no_coords = SlideGraph(np.eye(2), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"Slide 'hand-made'.*no node coords"):
        LesionMapDisplay.from_bag(bag, graph=no_coords)
    with pytest.raises(ValueError, match=r"Slide 'hand-made'.*prob_maps"):
        LesionMapDisplay.from_bag(bag.replace(prob_maps=None))
    display = LesionMapDisplay.from_bag(bag, k=None)
    display.classes, display.proba = ["a", "b"], [0.2, 0.3, 0.5]
    with pytest.raises(ValueError, match="2 classes for 3 probabilities"):
        display.plot()
    display.classes = display.proba = None
    display.tile_coords, display.tile_footprint = [[0, 0]], None
    with pytest.raises(ValueError, match=r"Slide 'hand-made'.*tile_footprint"):
        display.plot()


def test_thumbnail_of_a_real_slide_is_bounded(cmu_slide_path):
    slide = Slide(cmu_slide_path)
    rng = np.random.default_rng(0)
    bag = TileBag(
        slide,
        [[0, 0], [512, 1024], [1536, 2048]],
        512,
        scores=[3.0, 2.0, 1.0],
        prob_maps=rng.random((3, 64, 64)),
    )
    display = LesionMapDisplay.from_bag(bag, k=2, max_size=256)
    assert max(display.image_.get_array().shape[:2]) == 256
    # The view may come from the file's stored thumbnail: its extent matches
    # the slide to within a couple of view pixels.
    np.testing.assert_allclose(
        display.image_.get_extent(), [0, 2220, 2967, 0], atol=2 * 2967 / 256
    )
    assert len(display.tiles_) == 2


def test_from_prediction_shows_segmenter_map_topk_graph_and_prediction(
    fitted_pipeline, tmp_path
):
    from sklearn_gastric.pipeline import predict_slides

    pipe, slides = fitted_pipeline
    slide = Slide(slides[1], name="synthetic-1")
    (prediction,) = predict_slides(pipe, [slide], threshold=0.5)
    display = LesionMapDisplay.from_prediction(prediction, show_edges=True)
    assert display.lesion_map is prediction.lesion_map
    assert display.bag is prediction.bag
    (full_bag,) = pipe[:3].transform([slide])
    expected = lesion_map(full_bag, 0.5)
    np.testing.assert_array_equal(display.lesion_map.probability, expected.probability)
    assert display.lesion_map.regions == expected.regions
    (graph,) = pipe[:5].transform([slide])
    assert [r.get_xy() for r in display.tiles_] == [
        tuple(float(v) for v in xy) for xy in graph.coords
    ]
    assert len(display.edges_.get_segments()) == int(graph.adjacency.sum()) // 2
    proba = pipe.predict_proba([slide])[0]
    np.testing.assert_allclose(display.proba, proba, rtol=1e-6)
    assert list(display.classes) == list(pipe.classes_)
    title = display.ax_.get_title()
    assert title.startswith(f"synthetic-1: {pipe.predict([slide])[0]}\n")
    assert all(str(c) in title for c in pipe.classes_)
    path = tmp_path / "pipeline.png"
    display.figure_.savefig(path)
    assert path.stat().st_size > 1000


def test_from_prediction_without_graph_or_classifier(fitted_pipeline):
    from sklearn_gastric.pipeline import predict_slides

    pipe, slides = fitted_pipeline
    no_graph = Pipeline(pipe.steps[:4]).fit(slides)
    (prediction,) = predict_slides(no_graph, slides[:1])
    display = LesionMapDisplay.from_prediction(prediction)
    assert len(display.tiles_) == 4
    assert display.edges_ is None
    assert display.proba is None
    assert display.ax_.get_title() == "array(256x256)"
    no_selector = Pipeline(pipe.steps[:3]).fit(slides)
    (prediction,) = predict_slides(no_selector, slides[:1])
    display = LesionMapDisplay.from_prediction(prediction)
    assert display.tiles_ == [] and display.edges_ is None


def test_from_pipeline_is_deprecated_and_draws_the_same(fitted_pipeline):
    from sklearn_gastric.pipeline import predict_slides

    pipe, slides = fitted_pipeline
    with pytest.warns(FutureWarning, match="from_prediction"):
        display = LesionMapDisplay.from_pipeline(pipe, slides[0], threshold=0.4)
    (prediction,) = predict_slides(pipe, slides[:1], threshold=0.4)
    np.testing.assert_array_equal(
        display.lesion_map.labels, prediction.lesion_map.labels
    )
    np.testing.assert_array_equal(display.tile_coords, prediction.top_coords)
    np.testing.assert_array_equal(display.proba, prediction.proba)
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="one slide"):
        LesionMapDisplay.from_pipeline(pipe, slides[:2])
    unfitted = Pipeline(
        [("topk", TopKSelector()), ("gcn", GCNSlideClassifier(max_epochs=1))]
    )
    with pytest.warns(FutureWarning), pytest.raises(NotFittedError):
        LesionMapDisplay.from_pipeline(unfitted, slides[0])
