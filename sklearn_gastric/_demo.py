"""The ``sklearn-gastric demo`` run: the whole method on a synthetic cohort."""

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib

from ._persistence import save_model

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; tiles are scaled down from the patent's 512 px
    so that the run fits a laptop's CPU."""

    n_patches: int
    n_annotated_slides: int
    n_slides: int
    slide_size: int
    tile_size: int
    segmenter_epochs: int
    gcn_epochs: int
    cv_folds: int
    k: int


# Many annotated slides with few patches each: lesions differ more between
# slides than within one, and 16 slides of 32 patches trained a patch
# classifier at 0.45 held-out balanced accuracy where 64 slides of 12 reach
# 0.63 (slide-level cross-validation 0.77 against 0.96).
QUICK = DemoConfig(
    n_patches=768,
    n_annotated_slides=64,
    n_slides=48,
    slide_size=768,
    tile_size=64,
    segmenter_epochs=12,
    gcn_epochs=150,
    cv_folds=3,
    k=8,
)
FULL = DemoConfig(
    n_patches=1536,
    n_annotated_slides=128,
    n_slides=96,
    slide_size=1024,
    tile_size=64,
    segmenter_epochs=20,
    gcn_epochs=200,
    cv_folds=4,
    k=10,
)


def build_pipeline(segmenter, *, gcn_epochs=200, random_state=0, **kwargs):
    """The patent's chain with a trained (frozen) segmenter.

    .. deprecated:: 0.1
        Use :func:`sklearn_gastric.pipeline.make_gastric_pipeline`; this
        function will be removed in 0.3.

    The parameters are those of ``make_gastric_pipeline``, with
    ``gcn_epochs`` and ``random_state`` for its default GCN.

    Returns
    -------
    pipe : sklearn.pipeline.Pipeline
    """
    import warnings

    from .graph import GCNSlideClassifier
    from .pipeline import make_gastric_pipeline

    warnings.warn(
        "sklearn_gastric._demo.build_pipeline is deprecated in 0.1 and will be "
        "removed in 0.3: use sklearn_gastric.pipeline.make_gastric_pipeline.",
        FutureWarning,
        stacklevel=2,
    )
    classifier = GCNSlideClassifier(
        max_epochs=gcn_epochs, class_weight="balanced", random_state=random_state
    )
    return make_gastric_pipeline(segmenter, classifier=classifier, **kwargs)


def run_demo(
    out_dir="sklearn_gastric_demo",
    *,
    quick=False,
    config=None,
    slide=None,
    random_state=0,
    verbose=True,
):
    """Train and evaluate the whole method on synthetic data; predict a real slide.

    Steps: render an annotated cohort (synthetic slides with known lesion
    masks), sample training patches from it through the stain normaliser
    (:func:`~sklearn_gastric.segmentation.sample_patches`) and train a
    :class:`PatchSegmenter`; render another cohort of synthetic slides of
    the four classes; cross-validate the pipeline (stain normalisation to a
    real H&E target, tiling, Otsu tissue filter, frozen segmenter, top-K,
    Pearson graph, GCN) and print a classification report and a confusion
    matrix; fit it on the whole cohort,
    save it as ``model.sgm`` (pickle-free: ``sklearn-gastric predict
    out_dir/model.sgm SLIDE`` reuses it), and predict the real slide
    CMU-1-Small-Region (or ``slide``), writing its lesion map as
    ``<stem>_lesion_map.png`` and its suspected lesion regions as
    ``<stem>_lesions.geojson`` (QuPath). Every file appears under its name
    only once complete.

    The slide is opened and tiled before anything else: a slide that cannot
    be read, is smaller than a tile or holds no tissue tile fails at once
    with the :class:`~sklearn_gastric.io.SlideError` ``predict`` gives.

    Parameters
    ----------
    out_dir : str or os.PathLike, default="sklearn_gastric_demo"
        Where the report, the predictions and the pictures go.
    quick : bool, default=False
        A smaller cohort and shorter training (``QUICK`` instead of ``FULL``).
    config : DemoConfig, default=None
        The sizes of the run; overrides ``quick``.
    slide : str, os.PathLike or Slide, default=None
        The slide predicted at the end; None: the real slide
        CMU-1-Small-Region (:func:`~sklearn_gastric.datasets.fetch_cmu_small_region`).
    random_state : int, default=0
        Seed of every random step.
    verbose : bool, default=True
        Show progress.

    Returns
    -------
    summary : dict
        What was written to ``out_dir/summary.json``.
    """
    from .datasets import fetch_cmu_small_region, fetch_he_target
    from .io import open_slide
    from .utils import write_text_atomic
    from .utils._json import dumps

    if config is None:
        config = QUICK if quick else FULL
    # Opened and tiled first, so that a bad slide fails before minutes of
    # training, with the message `predict` gives for it.
    is_cmu = slide is None
    slide = open_slide(fetch_cmu_small_region() if is_cmu else slide)
    _check_has_tissue(slide, config.tile_size)
    target = fetch_he_target()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def say(message):
        if verbose:
            print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    segmenter = _train_segmenter(config, target, random_state, say, verbose)
    pipe, evaluation = _cross_validate(
        segmenter, config, target, random_state, say, verbose
    )
    model_path = save_model(
        pipe,
        out_dir / "model.sgm",
        metadata={"made_by": "sklearn-gastric demo", "config": asdict(config)},
    )
    say(f"saved the fitted pipeline as {model_path}")
    say(f"predicting {slide.name}")
    record = _predict_slide(pipe, slide, out_dir, is_cmu)
    summary = {
        "config": asdict(config),
        "random_state": random_state,
        **evaluation,
        "slide": slide.name,
        "slide_prediction": record["predicted_class"],
        "slide_proba": record["probabilities"],
        "outputs": {
            "model": str(model_path),
            "lesion_map_png": record["lesion_map_png"],
            "geojson": record["geojson"],
        },
        "slide_ood_score": record["ood_score"],
        "slide_out_of_distribution": record["out_of_distribution"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(out_dir / "summary.json", dumps(summary, indent=2))
    say(f"done; wrote {out_dir / 'summary.json'}")
    if verbose:
        print(
            "\nPredict more slides with the model the demo left:\n"
            f"  {predict_command(model_path, slide, out_dir)}"
        )
    return summary


def predict_command(model_path, slide, out_dir):
    """The ``sklearn-gastric predict`` command line that reuses the demo's
    model on its slide (quoted for a POSIX shell)."""
    import shlex

    target = slide.path if slide.path is not None else "SLIDE"
    words = ["sklearn-gastric", "predict", str(model_path), str(target)]
    words += ["--out", str(Path(out_dir) / "predictions"), "--report"]
    return " ".join(shlex.quote(w) for w in words)


def _train_segmenter(config, target, random_state, say, verbose):
    """Train the segmenter on normalised patches of an annotated cohort.

    The segmenter learns from patches of a separate annotated cohort (lesion
    masks known), normalised as the pipeline will normalise every slide.
    """
    from .datasets import SYNTHETIC_MPP, make_gastric_slides
    from .io import Slide
    from .preprocessing import StainNormalizer
    from .segmentation import PatchSegmenter, sample_patches

    normalizer = StainNormalizer(target=target).fit([])
    say(
        f"rendering {config.n_annotated_slides} annotated slides and sampling "
        f"{config.n_patches} normalised training patches"
    )
    annotated, annotated_labels, lesions = make_gastric_slides(
        config.n_annotated_slides,
        size=config.slide_size,
        random_state=random_state + 1,
    )
    annotated = [
        Slide(a, name=f"annotated_{i:03d}", mpp=SYNTHETIC_MPP)
        for i, a in enumerate(annotated)
    ]
    patches, masks, patch_labels, _ = sample_patches(
        annotated,
        lesions,
        annotated_labels,
        tile_size=config.tile_size,
        mpp=SYNTHETIC_MPP,
        # Two at least, so that each slide can give a lesion and a negative.
        n_patches=max(2, -(-config.n_patches // config.n_annotated_slides)),
        normalizer=normalizer,
        random_state=random_state,
    )
    say(f"training the V-Net segmenter on {len(patches)} patches")
    segmenter = PatchSegmenter(
        base_channels=8,
        depth=3,
        feature_dim=32,
        max_epochs=config.segmenter_epochs,
        lr=3e-3,
        batch_size=16,
        patience=None,
        verbose=int(verbose),
        random_state=random_state,
    ).fit(patches, masks, patch_labels)
    return segmenter.set_params(verbose=0)


def _cross_validate(segmenter, config, target, random_state, say, verbose):
    """Cross-validate the pipeline on a synthetic cohort, print the report,
    and fit it on the whole cohort; return it and the figures."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from .datasets import SYNTHETIC_MPP, make_gastric_slides
    from .graph import GCNSlideClassifier
    from .io import Slide
    from .pipeline import make_gastric_pipeline

    say(f"rendering {config.n_slides} synthetic slides")
    slides, labels, _ = make_gastric_slides(
        config.n_slides,
        size=config.slide_size,
        random_state=random_state,
        verbose=verbose,
    )
    # Named, so that warnings and errors say which synthetic slide.
    slides = [
        Slide(a, name=f"synthetic_{i:03d}", mpp=SYNTHETIC_MPP)
        for i, a in enumerate(slides)
    ]
    # The model keeps the resolution it learnt at, and reads every slide
    # there, 20x or 40x.
    pipe = make_gastric_pipeline(
        segmenter,
        tile_size=config.tile_size,
        mpp=SYNTHETIC_MPP,
        target=target,
        k=config.k,
        classifier=GCNSlideClassifier(
            max_epochs=config.gcn_epochs,
            class_weight="balanced",
            # Temperature scaling halved the held-out calibration error of
            # this recipe (docs/benchmarks.md); it needs enough slides in
            # every training fold to hold some out, which tiny cohorts lack.
            calibration="temperature" if _can_calibrate(config) else None,
            random_state=random_state,
        ),
    )
    say(f"{config.cv_folds}-fold cross-validation")
    cv = StratifiedKFold(config.cv_folds, shuffle=True, random_state=random_state)
    with tempfile.TemporaryDirectory(prefix="sklearn_gastric_demo_") as cache:
        # Each slide is segmented once, not once per fold and once more for
        # the final fit: the frozen segmenter's per-slide cache.
        segmenter.set_params(memory=joblib.Memory(cache, verbose=0))
        predicted = cross_val_predict(pipe, slides, labels, cv=cv)
        say("fitting on the whole cohort")
        pipe.fit(slides, labels)
        segmenter.set_params(memory=None)
    return pipe, _report(labels, predicted, config)


def _can_calibrate(config, n_classes=4, calibration_cv=5):
    """Whether the GCN can hold out slides for its temperature in the
    smallest cross-validation training fold (the cohort is balanced over
    the classes), by the rule the GCN itself applies."""
    import numpy as np

    from .graph._confidence import out_of_fold_splits

    smallest = config.n_slides - -(-config.n_slides // config.cv_folds)
    labels = np.arange(smallest) % n_classes
    return bool(out_of_fold_splits(labels, calibration_cv, seed=0))


def _report(labels, predicted, config):
    """Print the cross-validated report; return its figures for the summary."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        classification_report,
        confusion_matrix,
    )

    from .datasets import GASTRIC_CLASSES

    order = [c for c in GASTRIC_CLASSES if c in set(labels)]
    report = classification_report(labels, predicted, labels=order, zero_division=0)
    matrix = confusion_matrix(labels, predicted, labels=order)
    balanced_accuracy = float(balanced_accuracy_score(labels, predicted))
    print("\nCross-validated classification report (synthetic cohort):")
    print(report)
    print(
        f"Cross-validated balanced accuracy: {balanced_accuracy:.3f} "
        f"({config.cv_folds} folds, {len(labels)} slides)"
    )
    print("Confusion matrix (rows: true, columns: predicted):")
    width = max(len(c) for c in order)
    print(" " * (width + 2) + "  ".join(f"{c:>{width}}" for c in order))
    for name, row in zip(order, matrix):
        print(f"{name:>{width}}  " + "  ".join(f"{v:>{width}}" for v in row))
    return {
        "cv_balanced_accuracy": balanced_accuracy,
        "confusion_matrix": {"labels": order, "matrix": matrix.tolist()},
    }


def _predict_slide(pipe, slide, out_dir, is_cmu):
    """Predict one slide, write its lesion map and GeoJSON, print the class."""
    import matplotlib

    matplotlib.use("Agg")

    from ._prediction_folder import ood_warning, write_slide_outputs
    from .pipeline import predict_slides

    (prediction,) = predict_slides(pipe, [slide])
    record = write_slide_outputs(prediction, out_dir, Path(slide.name).stem)
    note = " (skin, not gastric: a smoke test)" if is_cmu else ""
    print(f"\n{slide.name}{note}: {record['predicted_class']}")
    warning = ood_warning(record)
    if warning is not None:
        print(f"  {warning}")
    elif record["out_of_distribution"] is False:
        print(
            f"  in distribution (score {record['ood_score']:.3g} <= threshold "
            f"{record['ood_threshold']:.3g})"
        )
    for name, p in record["probabilities"].items():
        print(f"  P({name}) = {p:.3f}")
    print(f"  {record['n_lesion_regions']} suspected lesion region(s)")
    print(f"  lesion map: {record['lesion_map_png']}")
    return record


def _check_has_tissue(slide, tile_size):
    """Raise the SlideError ``predict`` gives for a slide with no tissue tile
    (or one smaller than a tile)."""
    from .datasets import SYNTHETIC_MPP
    from .io import SlideError
    from .preprocessing import OtsuFilter, Tiler

    try:
        (bag,) = OtsuFilter().fit_transform(
            Tiler(tile_size, mpp=SYNTHETIC_MPP).fit_transform([slide])
        )
    except SlideError:
        raise
    except ValueError as exc:
        raise SlideError(str(exc)) from exc
    if len(bag) == 0:
        raise SlideError(f"Slide {slide.name!r}: no tissue tile.")
