"""sklearn-gastric: scikit-learn estimators for gastric whole-slide images.

The steps of patent CN 112990339 A as estimators that chain in a
:class:`sklearn.pipeline.Pipeline`: :class:`StainNormalizer`, :class:`Tiler`,
:class:`OtsuFilter`, :class:`PatchSegmenter`, :class:`TopKSelector`,
:class:`PearsonGraphBuilder` and :class:`GCNSlideClassifier`.

The torch-backed estimators (:class:`PatchSegmenter`,
:class:`GCNSlideClassifier`) are imported on first use: ``import
sklearn_gastric`` does not import torch.
"""

from ._lazy import lazy_exports
from ._persistence import ModelFileError, load_model, save_model
from ._version import __version__
from .baselines import PooledFeatureClassifier, ProportionThresholdClassifier
from .graph import PearsonGraphBuilder, SlideGraph, TopKSelector
from .io import Slide, SlideError, open_slide
from .metrics import expected_calibration_error
from .pipeline import SlidePrediction, make_gastric_pipeline, predict_slides
from .preprocessing import (
    OtsuFilter,
    StainNormalizer,
    TileBag,
    Tiler,
    UnreadableTileWarning,
)
from .visualization import (
    LesionMapDisplay,
    ReliabilityDiagramDisplay,
    export_geojson,
    lesion_map,
)

__all__ = [
    "GCNSlideClassifier",
    "LesionMapDisplay",
    "ModelFileError",
    "OtsuFilter",
    "PatchSegmenter",
    "PearsonGraphBuilder",
    "PooledFeatureClassifier",
    "ProportionThresholdClassifier",
    "ReliabilityDiagramDisplay",
    "Slide",
    "SlideError",
    "SlideGraph",
    "SlidePrediction",
    "StainNormalizer",
    "TileBag",
    "Tiler",
    "TopKSelector",
    "UnreadableTileWarning",
    "__version__",
    "expected_calibration_error",
    "export_geojson",
    "lesion_map",
    "load_model",
    "make_gastric_pipeline",
    "open_slide",
    "predict_slides",
    "save_model",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"GCNSlideClassifier": ".graph", "PatchSegmenter": ".segmentation"},
    globals(),
)
