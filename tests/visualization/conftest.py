"""The visualization tests' shared fitted pipeline."""

import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from sklearn_gastric.datasets import make_gastric_slides
from sklearn_gastric.graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
from sklearn_gastric.preprocessing import OtsuFilter, Tiler


@pytest.fixture(scope="module")
def fitted_pipeline(tiny_segmenter):
    """A tiny patent pipeline fitted on six 256-pixel synthetic slides, and
    the slides."""
    slides, labels, _ = make_gastric_slides(6, size=256, random_state=0)
    pipe = Pipeline(
        [
            ("tile", Tiler(tile_size=32)),
            ("tissue", OtsuFilter(min_tissue=0.5)),
            ("seg", FrozenEstimator(tiny_segmenter)),
            ("topk", TopKSelector(k=4)),
            ("graph", PearsonGraphBuilder(threshold=0.0)),
            ("gcn", GCNSlideClassifier(hidden_units=8, max_epochs=5, random_state=0)),
        ]
    ).fit(slides, labels)
    return pipe, slides
