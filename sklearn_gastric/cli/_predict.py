"""``sklearn-gastric predict``: classify slides into an output folder."""

from pathlib import Path

from .._version import __version__
from ._common import (
    CommandError,
    check_out_dir,
    load_pipeline,
    make_out_dir,
    progress,
    say,
    set_torch_threads,
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


def predict_command(args):
    from .._prediction_folder import PredictionFolder, ood_warning
    from ..io import SlideError, open_slide

    out_dir = check_out_dir(args.out)
    pipeline = load_pipeline(args.model, trust_pickle=args.trust_pickle)
    _set_inference(pipeline, args)
    paths = _distinct_paths(args.slides)
    opened, unreadable = [], []
    for path in paths:
        try:
            opened.append((path, open_slide(path)))
        except (OSError, SlideError) as exc:
            if not args.skip_errors:
                raise CommandError(str(exc)) from exc
            unreadable.append((path, str(exc)))
    make_out_dir(out_dir)
    set_torch_threads(args.torch_threads)
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
        for path, slide in progress(
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
    if args.report:
        from .._report import write_report

        report = write_report(document, out_dir)
        say(args, f"wrote {report}")
    width = max((len(r["name"]) for r in results), default=0)
    for result in results:
        p = result["probabilities"][result["predicted_class"]]
        line = f"{result['name']:<{width}}  {result['predicted_class']}  ({p:.2f})"
        warning = ood_warning(result)
        print(line if warning is None else f"{line}  {warning}")
    earlier = len(document["slides"]) + len(document["errors"]) - len(paths)
    say(
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
