"""One prediction path: a fitted pipeline run on slides, every step's output kept."""

from dataclasses import dataclass
from numbers import Real

import numpy as np
from sklearn.pipeline import Pipeline

from .graph import SlideGraph
from .io import Slide, open_slide
from .preprocessing import TileBag
from .utils._sklearn_compat import Interval, validate_params
from .visualization import LesionMap, lesion_map

__all__ = ["SlidePrediction", "find_step", "predict_slides"]


@dataclass(frozen=True, eq=False, repr=False)
class SlidePrediction:
    """What a fitted pipeline made of one slide, made by :func:`predict_slides`.

    Attributes
    ----------
    slide : Slide
        The slide, as the pipeline read it (with its stain normalisation,
        when the pipeline has one).
    bag : TileBag
        Every tissue tile of the slide as the segmenter left it: ``coords``,
        ``features``, ``scores``, ``patch_proba`` and ``prob_maps``.
    top_tiles : TileBag or None
        The tiles the selector kept, highest score first; None when the
        pipeline has no selector.
    graph : SlideGraph or None
        The slide graph over the top tiles; None when the pipeline has no
        graph step.
    classes : ndarray of shape (n_classes,) or None
        The pipeline's classes; None when its last step gives no
        probabilities.
    proba : ndarray of shape (n_classes,) or None
        The slide's class probabilities, in the order of ``classes``.
    lesion_map : LesionMap
        The slide's lesion probability map and suspected lesion regions.
    patch_classes : ndarray of shape (n_patch_classes,) or None
        The segmenter's classes: the columns of ``bag.patch_proba``, which
        classify the lesion regions.
    ood_score : float or None
        How unlike the training slides this slide is (the classifier's
        ``ood_score``; larger is more unlike); None when the last step
        gives none.
    ood_threshold : float or None
        The score above which a slide is out of distribution (the
        classifier's ``ood_threshold_``).
    """

    slide: Slide
    bag: TileBag
    top_tiles: TileBag = None
    graph: SlideGraph = None
    classes: np.ndarray = None
    proba: np.ndarray = None
    lesion_map: LesionMap = None
    patch_classes: np.ndarray = None
    ood_score: float = None
    ood_threshold: float = None

    def __repr__(self):
        return (
            f"SlidePrediction({self.name!r}, predicted_class="
            f"{self.predicted_class!r}, n_tiles={len(self.bag)}, "
            f"n_top_tiles={len(self.top_coords)}, "
            f"n_lesion_regions={len(self.lesion_map.regions)})"
        )

    @property
    def name(self):
        """The slide's name."""
        return self.slide.name

    @property
    def predicted_class(self):
        """The class of highest probability; None without probabilities."""
        if self.proba is None:
            return None
        return self.classes[int(np.argmax(self.proba))]

    @property
    def out_of_distribution(self):
        """Whether the slide is unlike the training slides (``ood_score`` above
        ``ood_threshold``); None when the classifier gives no score."""
        if self.ood_score is None or self.ood_threshold is None:
            return None
        return bool(self.ood_score > self.ood_threshold)

    @property
    def top_coords(self):
        """Level-0 ``(x, y)`` of the top tiles, highest score first, shape (K, 2)."""
        if self.graph is not None and self.graph.coords is not None:
            return np.asarray(self.graph.coords)
        if self.top_tiles is not None:
            return self.top_tiles.coords
        return np.zeros((0, 2), dtype=np.int64)

    @property
    def top_scores(self):
        """The top tiles' scores, in the order of :attr:`top_coords`."""
        if self.graph is not None and self.graph.scores is not None:
            return np.asarray(self.graph.scores, dtype=float)
        if self.top_tiles is not None and self.top_tiles.scores is not None:
            return np.asarray(self.top_tiles.scores, dtype=float)
        return np.full(len(self.top_coords), np.nan)

    def to_dict(self):
        """The prediction as JSON values (the record ``predict`` writes).

        Returns
        -------
        record : dict
            ``name``, ``path``, ``classes``, ``predicted_class``,
            ``probabilities``, ``n_tissue_tiles``, ``top_tiles`` (``rank``,
            ``x``, ``y``, ``size``, ``score``), ``n_lesion_regions``,
            ``lesion_threshold``, ``ood_score``, ``ood_threshold`` and
            ``out_of_distribution`` (None when the classifier gives no
            score), and how the slide was read: ``mpp`` (its level-0
            resolution, µm/px, the mean of x and y; None when unknown),
            ``read_level`` (the pyramid level its tiles were read from),
            ``tile_size`` (pixels of a tile as the segmenter saw it) and
            ``read_mpp`` (their resolution, µm/px; None when the slide's is
            unknown). Coordinates and sizes are level-0 pixels.
        """
        classes = [] if self.classes is None else [str(c) for c in self.classes]
        proba = [] if self.proba is None else [float(p) for p in self.proba]
        size = int(self.bag.footprint)
        top = [
            {"rank": rank, "x": int(x), "y": int(y), "size": size, "score": score}
            for rank, ((x, y), score) in enumerate(
                zip(self.top_coords.tolist(), self.top_scores.tolist()), start=1
            )
        ]
        predicted = self.predicted_class
        return {
            "name": self.name,
            "path": str(self.slide.path) if self.slide.path is not None else None,
            "classes": classes,
            "predicted_class": None if predicted is None else str(predicted),
            "probabilities": dict(zip(classes, proba)),
            "n_tissue_tiles": len(self.bag),
            "top_tiles": top,
            "n_lesion_regions": len(self.lesion_map.regions),
            "lesion_threshold": float(self.lesion_map.threshold),
            "ood_score": _float_or_none(self.ood_score),
            "ood_threshold": _float_or_none(self.ood_threshold),
            "out_of_distribution": self.out_of_distribution,
            **_read_resolution(self.bag),
        }


def find_step(pipeline, cls):
    """The estimator of ``pipeline``'s first step that is a ``cls``.

    A step wrapped in :class:`~sklearn.frozen.FrozenEstimator` counts as
    what it wraps.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
    cls : type or tuple of type

    Returns
    -------
    estimator : estimator or None
        The (unwrapped) estimator, or None when no step is a ``cls``.

    Examples
    --------
    >>> from sklearn_gastric import PatchSegmenter, Tiler
    >>> from sklearn_gastric.pipeline import find_step, make_gastric_pipeline
    >>> pipe = make_gastric_pipeline(PatchSegmenter(depth=2), tile_size=64)
    >>> find_step(pipe, PatchSegmenter)
    PatchSegmenter(depth=2)
    >>> find_step(pipe, Tiler).tile_size
    64
    """
    for _, step in pipeline.steps:
        inner = getattr(step, "estimator", step)
        if isinstance(inner, cls):
            return inner
    return None


@validate_params(
    {
        "pipeline": [Pipeline],
        "slides": ["array-like"],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "downsample": [Interval(Real, 0, None, closed="neither"), None],
    },
    prefer_skip_nested_validation=True,
)
def predict_slides(pipeline, slides, *, threshold=0.5, downsample=None):
    """Run a fitted pipeline on slides and keep what each step made of them.

    The pipeline's steps are run in turn, as ``pipeline.predict_proba``
    runs them, whatever their names: the first output of TileBags with
    ``prob_maps`` (the segmenter's) is each slide's :attr:`~SlidePrediction.bag`
    and gives its lesion map, a later TileBag output (the top-K
    selector's) its :attr:`~SlidePrediction.top_tiles`, a SlideGraph output
    its :attr:`~SlidePrediction.graph`, the last step's
    ``predict_proba`` its probabilities, and the last step's ``ood_score``
    and ``ood_threshold_`` (a :class:`~sklearn_gastric.GCNSlideClassifier`'s)
    its out-of-distribution score and flag.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        A fitted pipeline whose steps turn slides into TileBags with
        ``prob_maps``, e.g. one of :func:`make_gastric_pipeline`.
    slides : list of (str, os.PathLike, ndarray or Slide)
        The slides.
    threshold : float, default=0.5
        Lesion probability above which a pixel is a suspected lesion (the
        method's third threshold).
    downsample : float, default=None
        Resolution of the lesion maps, see
        :func:`~sklearn_gastric.visualization.lesion_map`.

    Returns
    -------
    predictions : list of SlidePrediction
        One per slide, in order.

    Raises
    ------
    ValueError
        No step of the pipeline makes TileBags with ``prob_maps``; or any
        error of the steps themselves (a slide with no tissue tile, ...),
        which names the slide.

    See Also
    --------
    LesionMapDisplay.from_prediction : Draw a prediction.
    export_geojson : Write a prediction's lesion regions for QuPath.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn_gastric import PatchSegmenter, Tiler, TopKSelector
    >>> from sklearn_gastric.datasets import make_patch_dataset
    >>> from sklearn_gastric.pipeline import predict_slides
    >>> patches, masks, _ = make_patch_dataset(8, tile_size=32, random_state=0)
    >>> segmenter = PatchSegmenter(base_channels=4, depth=2, feature_dim=4,
    ...                            max_epochs=1, random_state=0)
    >>> segmenter = segmenter.fit(patches, masks)
    >>> pipe = Pipeline([("tile", Tiler(tile_size=32)),
    ...                  ("seg", FrozenEstimator(segmenter)),
    ...                  ("topk", TopKSelector(k=2))]).fit([])
    >>> (prediction,) = predict_slides(pipe, [np.full((64, 64, 3), 200, np.uint8)])
    >>> len(prediction.bag), prediction.top_coords.shape, prediction.proba
    (4, (2, 2), None)
    """
    from sklearn.utils.validation import check_is_fitted

    from .segmentation import PatchSegmenter

    check_is_fitted(pipeline)
    if isinstance(slides, np.ndarray) and slides.ndim == 3:
        raise TypeError(
            "predict_slides takes a list of slides; got one "
            f"{type(slides).__name__} (wrap it in a list)."
        )
    slides = [open_slide(slide) for slide in slides]
    outputs = _run_steps(pipeline, slides)
    if outputs["bags"] is None:
        names = ", ".join(repr(slide.name) for slide in slides)
        raise ValueError(
            f"Slide{'s' if len(slides) > 1 else ''} {names}: no step of the "
            "pipeline produced TileBags with 'prob_maps'; the pipeline needs a "
            "segmenter (FrozenEstimator(PatchSegmenter))."
        )
    proba = outputs["proba"]
    classes = getattr(pipeline, "classes_", None) if proba is not None else None
    segmenter = find_step(pipeline, PatchSegmenter)
    patch_classes = getattr(segmenter, "classes_", None)
    predictions = []
    for index, bag in enumerate(outputs["bags"]):
        predictions.append(
            SlidePrediction(
                slide=bag.slide,
                bag=bag,
                top_tiles=_item(outputs["selected"], index),
                graph=_item(outputs["graphs"], index),
                classes=None if classes is None else np.asarray(classes),
                proba=_item(proba, index),
                lesion_map=lesion_map(bag, threshold, downsample=downsample),
                patch_classes=patch_classes,
                ood_score=_item(outputs["ood_score"], index),
                ood_threshold=outputs["ood_threshold"],
            )
        )
    return predictions


def _run_steps(pipeline, slides):
    """Each step's transform in turn, keeping the outputs a prediction holds."""
    Xt = slides
    outputs = {
        "bags": None,
        "selected": None,
        "graphs": None,
        "proba": None,
        "ood_score": None,
        "ood_threshold": None,
    }
    steps = [step for _, step in pipeline.steps if step not in (None, "passthrough")]
    for index, step in enumerate(steps):
        if index == len(steps) - 1 and hasattr(step, "predict_proba"):
            outputs["proba"] = np.asarray(step.predict_proba(Xt))
            if hasattr(step, "ood_score") and hasattr(step, "ood_threshold_"):
                outputs["ood_score"] = [float(v) for v in step.ood_score(Xt)]
                outputs["ood_threshold"] = float(step.ood_threshold_)
            break
        Xt = step.transform(Xt)
        first = Xt[0] if len(Xt) else None
        if isinstance(first, TileBag):
            if outputs["bags"] is None:
                if first.prob_maps is not None:
                    outputs["bags"] = list(Xt)
            else:
                outputs["selected"] = list(Xt)
        elif isinstance(first, SlideGraph):
            outputs["graphs"] = list(Xt)
    return outputs


def _read_resolution(bag):
    """Where and at what resolution the tiles of ``bag`` were read."""
    mpp = bag.slide.mpp
    slide_mpp = None if mpp is None else (float(mpp[0]) + float(mpp[1])) / 2
    return {
        "mpp": slide_mpp,
        "read_level": int(bag.level),
        "tile_size": int(bag.tile_size),
        "read_mpp": None if slide_mpp is None else slide_mpp * bag.pixel_downsample,
    }


def _item(values, index):
    return None if values is None else values[index]


def _float_or_none(value):
    return None if value is None else float(value)
