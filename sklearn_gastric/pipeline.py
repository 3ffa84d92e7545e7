"""The production pipeline, and running it on slides.

:func:`make_gastric_pipeline` is the one place that names the steps of the
method (``stain``, ``tile``, ``tissue``, ``seg``, ``topk``, ``graph``,
``gcn``); :func:`predict_slides` runs a fitted pipeline on slides and keeps
what every step made, as one :class:`SlidePrediction` per slide, from which
the lesion map display, the GeoJSON export and the command line's output
files are drawn.
"""

from numbers import Integral, Real

from sklearn.base import BaseEstimator

from ._prediction import SlidePrediction, find_step, predict_slides
from .utils._sklearn_compat import Interval, validate_params

__all__ = [
    "SlidePrediction",
    "find_step",
    "make_gastric_pipeline",
    "predict_slides",
]


@validate_params(
    {
        "segmenter": [BaseEstimator],
        "tile_size": [Interval(Integral, 1, None, closed="left")],
        "mpp": [Interval(Real, 0, None, closed="neither"), None],
        "target": "no_validation",
        "min_tissue": [Interval(Real, 0, 1, closed="both")],
        "k": [Interval(Integral, 1, None, closed="left")],
        "threshold": [Interval(Real, None, None, closed="neither")],
        "classifier": [BaseEstimator, None],
        "memory": "no_validation",
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_gastric_pipeline(
    segmenter,
    *,
    tile_size,
    mpp=None,
    target=None,
    min_tissue=0.7,
    k=10,
    threshold=0.5,
    classifier=None,
    memory=None,
    random_state=None,
):
    """The method's chain around a trained segmenter, as a scikit-learn Pipeline.

    Stain normalisation (when ``target`` is given), tiling, the Otsu tissue
    filter, the segmenter frozen with
    :class:`~sklearn.frozen.FrozenEstimator` (so that ``fit``, ``clone`` and
    :class:`~sklearn.model_selection.GridSearchCV` never retrain it), the
    top-K selection, the Pearson graph and the slide classifier.

    Parameters
    ----------
    segmenter : PatchSegmenter
        A fitted segmenter.
    tile_size : int
        Tile side in pixels: the patch size the segmenter was trained on.
    mpp : float, default=None
        The resolution, in µm per pixel, of the patches the segmenter was
        trained on (``sample_patches(..., mpp=mpp)``): every slide is tiled
        at it, from its best pyramid level (``Tiler(tile_size, mpp=mpp)``),
        so 20x and 40x scans give tiles of one physical size. The fitted
        pipeline, and its model file, keep it. Slides then need a resolution
        (their file's, or ``open_slide(path, mpp=...)``). None: tiles of
        level-0 pixels, whatever the scanner.
    target : ndarray or str or os.PathLike, default=None
        The H&E image every slide is stain-normalised to
        (:class:`~sklearn_gastric.StainNormalizer`); None: no normalisation.
        Train the segmenter on patches normalised the same way
        (``sample_patches(..., normalizer=StainNormalizer(target=...))``).
    min_tissue : float, default=0.7
        Smallest tissue fraction of a kept tile.
    k : int, default=10
        Tiles kept per slide, highest score first.
    threshold : float, default=0.5
        Pearson threshold of the slide graph.
    classifier : estimator, default=None
        The final step, fitted on the slide graphs; None:
        ``GCNSlideClassifier(class_weight="balanced",
        random_state=random_state)``.
    memory : str or joblib.Memory, default=None
        The Pipeline's cache of fitted transformers.
    random_state : int, RandomState instance or None, default=None
        Seed of the default classifier.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted; ``fit(slides, labels)`` trains the classifier. The steps
        are named ``stain`` (only with ``target``), ``tile``, ``tissue``,
        ``seg``, ``topk``, ``graph`` and ``gcn``.

    See Also
    --------
    predict_slides : Run the fitted pipeline and keep every step's output.

    Examples
    --------
    >>> from sklearn_gastric import PatchSegmenter
    >>> from sklearn_gastric.pipeline import make_gastric_pipeline
    >>> pipe = make_gastric_pipeline(PatchSegmenter(), tile_size=64, k=5)
    >>> [name for name, _ in pipe.steps]
    ['tile', 'tissue', 'seg', 'topk', 'graph', 'gcn']
    >>> pipe.named_steps["topk"]
    TopKSelector(k=5)
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    from .graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
    from .preprocessing import OtsuFilter, StainNormalizer, Tiler

    if classifier is None:
        classifier = GCNSlideClassifier(
            class_weight="balanced", random_state=random_state
        )
    steps = []
    if target is not None:
        steps.append(("stain", StainNormalizer(target=target)))
    steps += [
        ("tile", Tiler(tile_size=tile_size, mpp=mpp)),
        ("tissue", OtsuFilter(min_tissue=min_tissue)),
        ("seg", FrozenEstimator(segmenter)),
        ("topk", TopKSelector(k=k)),
        ("graph", PearsonGraphBuilder(threshold=threshold)),
        ("gcn", classifier),
    ]
    return Pipeline(steps, memory=memory)
