"""``sklearn-gastric predict``: classify slides into an output folder."""

import sys
from pathlib import Path

from .._prediction_folder import INDEX_FILES, REPORT_FILE
from .._version import __version__
from ._common import (
    CommandError,
    check_out_dir,
    load_pipeline,
    make_out_dir,
    model_resolution,
    open_slide_at,
    progress,
    say,
    set_torch_threads,
    warn_level_zero_model,
)

__all__ = ["predict_command"]


def _import_plotting():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    from .. import visualization  # noqa: F401


def _predict_one(pipeline, slide, stem, folder, threshold):
    """Predict one slide; write its lesion map and GeoJSON; return its record."""
    from .._prediction_folder import write_slide_outputs
    from ..pipeline import predict_slides

    (prediction,) = predict_slides(pipeline, [slide], threshold=threshold)
    return write_slide_outputs(prediction, folder.folder, stem)


def _set_inference(pipeline, args):
    """The model's segmenter runs with the --precision and --engine asked."""
    from ..pipeline import find_step
    from ..segmentation import PatchSegmenter

    # load_pipeline has checked that there is one.
    segmenter = find_step(pipeline, PatchSegmenter)
    segmenter.set_params(precision=args.precision, engine=args.engine)
    if args.engine == "openvino":
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            raise CommandError(
                "--engine openvino needs OpenVINO: pip install "
                "'sklearn-gastric[openvino]'."
            )


def _distinct_paths(paths):
    """The slides in order, each file once (the same slide twice is one)."""
    seen, distinct = set(), []
    for path in paths:
        key = Path(path).absolute()
        if key not in seen:
            seen.add(key)
            distinct.append(path)
    return distinct


def _lock_timeout():
    from .._prediction_folder import lock_timeout

    try:
        return lock_timeout()
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _warn(message):
    print(f"sklearn-gastric predict: {message}", file=sys.stderr, flush=True)


def _slide_error(path, exc, out_dir):
    """The message of a slide that failed: the library's (it names the
    slide), or, for an output it could not write, the slide and the file."""
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename is not None:
        if Path(filename).absolute().parent == out_dir:
            return (
                f"Slide {Path(path).name!r}: cannot write {str(filename)!r} "
                f"({exc.strerror or exc})."
            )
    return str(exc)


def predict_command(args):
    from .._prediction_folder import PredictionFolder
    from ..io import SlideError
    from ..utils._files import NoSpaceError

    out_dir = check_out_dir(args.out)
    timeout = _lock_timeout()
    pipeline = load_pipeline(args.model, trust_pickle=args.trust_pickle)
    _set_inference(pipeline, args)
    tile_mpp = model_resolution(pipeline)
    if tile_mpp is None:
        warn_level_zero_model(args.model)
    paths = _distinct_paths(args.slides)
    opened, unreadable = _open_slides(paths, tile_mpp, args)
    set_torch_threads(args.torch_threads)
    make_out_dir(out_dir)
    # Imported now, not at the first slide: Ctrl-C inside a C extension's
    # import leaves it half-initialised, and the process aborts at exit.
    _import_plotting()
    model = str(Path(args.model).absolute())
    folder = PredictionFolder(out_dir, lock_timeout=timeout, notify=_warn)
    results, failures = [], []

    def fail(path, stem, message):
        failures.append(message)
        if stem is None:
            return
        error = {
            "name": Path(path).name,
            "path": str(Path(path).absolute()),
            "model": model,
            "error": message,
        }
        try:
            folder.write_record(stem, error)
        except NoSpaceError:
            raise
        except OSError:
            pass  # its claim is released with the run's: the message stands

    def predict(path, slide, unreadable=None):
        """The slide's record, or None when it failed (``unreadable``: the
        message of a slide that could not be opened)."""
        stem = None
        try:
            stem = folder.claim(path)
            if unreadable is not None:
                fail(path, stem, unreadable)
                return None
            record = _predict_one(pipeline, slide, stem, folder, args.threshold)
            record = {**record, "model": model, "sklearn_gastric_version": __version__}
            folder.write_record(stem, record)
        except NoSpaceError as exc:
            # Every later slide would fail the same way: stop the run.
            raise CommandError(f"Slide {Path(path).name!r}: {exc}") from exc
        except (OSError, SlideError, ValueError) as exc:
            message = _slide_error(path, exc, out_dir)
            fail(path, stem, message)
            if not args.skip_errors:
                raise CommandError(message) from exc
            return None
        return record

    finished = False
    try:
        for path, message in unreadable:
            predict(path, None, unreadable=message)
        for path, slide in progress(
            opened, total=len(opened), desc="Predicting", quiet=args.quiet
        ):
            record = predict(path, slide)
            if record is not None:
                results.append(record)
        finished = True
    finally:
        # Also when stopped (an error, Ctrl-C, SIGTERM): the index and the
        # report list every slide whose files are in the folder.
        folder.release()
        document = _write_index(folder, args, out_dir, raise_errors=finished)
    _summarise(args, results, document, out_dir, len(paths))
    if failures:
        raise CommandError(
            f"{len(failures)} of {len(paths)} slide(s) skipped:\n  "
            + "\n  ".join(failures)
        )
    return 0


def _open_slides(paths, tile_mpp, args):
    """``(opened, unreadable)``: ``(path, slide)`` pairs, and ``(path,
    message)`` pairs of the slides that cannot be read at ``tile_mpp``
    (with ``--skip-errors``; without it the first is a CommandError)."""
    from ..io import SlideError

    opened, unreadable = [], []
    for path in paths:
        try:
            opened.append((path, open_slide_at(path, tile_mpp, args.assume_mpp)))
        except (OSError, SlideError) as exc:
            if not args.skip_errors:
                raise CommandError(str(exc)) from exc
            unreadable.append((path, str(exc)))
    return opened, unreadable


def _summarise(args, results, document, out_dir, n_slides):
    """Print each slide's class (and warning), and what was written."""
    from .._prediction_folder import ood_warning

    if args.report:
        say(args, f"wrote {out_dir / REPORT_FILE}")
    width = max((len(r["name"]) for r in results), default=0)
    for result in results:
        p = result["probabilities"][result["predicted_class"]]
        line = f"{result['name']:<{width}}  {result['predicted_class']}  ({p:.2f})"
        warning = ood_warning(result)
        print(line if warning is None else f"{line}  {warning}")
    earlier = len(document["slides"]) + len(document["errors"]) - n_slides
    say(
        args,
        f"wrote {out_dir / INDEX_FILES[args.format]}"
        + (f" (with {earlier} slide(s) of earlier runs)" if earlier > 0 else ""),
    )


def _write_index(folder, args, out_dir, *, raise_errors):
    """Rebuild the index (and report) of the folder; return its document.

    When the run is already stopping (``raise_errors`` false), a failure
    here is only told: the error that stopped the run is the one reported.
    """
    from ..utils._files import LockTimeoutError

    try:
        _, document = folder.write_index(args.format, report=args.report)
    except (LockTimeoutError, OSError) as exc:
        message = f"could not rebuild the index of {str(out_dir)!r}: {exc}"
        if raise_errors:
            raise CommandError(message) from exc
        _warn(message)
        return None
    return document
