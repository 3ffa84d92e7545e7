"""What the commands share: the user-error exception and exit statuses,
``--out`` checks, opening slides, progress, torch threads, model files."""

import os
import sys
import tempfile
from pathlib import Path

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CommandError",
    "Terminated",
    "check_out_dir",
    "check_out_file",
    "load_pipeline",
    "make_out_dir",
    "make_out_file_folder",
    "model_resolution",
    "open_slide_at",
    "open_slides",
    "progress",
    "save_trained_pipeline",
    "say",
    "set_torch_threads",
    "warn_level_zero_model",
]

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class CommandError(Exception):
    """An error the user can fix: reported without a traceback, exit status 2."""


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM (a batch scheduler stopping a job) or
    SIGHUP (its terminal closed): stopped as Ctrl-C stops it, with the same
    cleanup, but exit status 128 + the signal's number (143, 129).

    Parameters
    ----------
    signum : int
        The signal.
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self):
        """The exit status: 128 + the signal's number, as a shell reports it."""
        return 128 + self.signum

    @property
    def signal_name(self):
        """The signal's name, e.g. ``"SIGTERM"``."""
        import signal

        return signal.Signals(self.signum).name


# -- the run ------------------------------------------------------------------


def set_torch_threads(threads):
    """Torch threads for the whole run: ``threads`` if given, else the
    library's policy (:func:`~sklearn_gastric.utils._cpu.default_torch_threads`),
    for this process and, through ``SKLEARN_GASTRIC_TORCH_THREADS``, for the
    estimators' own policy and any worker process."""
    import torch

    from ..utils._cpu import THREADS_VARIABLE, default_torch_threads

    if threads is not None:
        os.environ[THREADS_VARIABLE] = str(threads)
    try:
        n_threads = default_torch_threads()
    except ValueError as exc:  # the variable, set by the user to no count
        raise CommandError(str(exc)) from None
    torch.set_num_threads(n_threads)


def progress(iterable, *, total, desc, quiet):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=quiet, file=sys.stderr)


def say(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def open_slides(paths, *, tile_mpp=None, assume_mpp=None):
    """Open every slide before any long work, so a bad one fails fast
    (see :func:`open_slide_at`)."""
    from ..io import SlideError

    slides = []
    for path in paths:
        try:
            slides.append(open_slide_at(path, tile_mpp, assume_mpp))
        except (OSError, SlideError) as exc:
            raise CommandError(str(exc)) from exc
    return slides


def open_slide_at(path, tile_mpp, assume_mpp):
    """The slide of ``path``, at ``assume_mpp`` (``--assume-mpp``) when its
    file states no usable resolution; a SlideError naming it when tiles are
    cut at ``tile_mpp`` (``--mpp``, or the model's) and it has none."""
    from ..io import SlideError, open_slide

    slide = open_slide(path)
    if slide.mpp is None and assume_mpp is not None:
        slide = slide.with_mpp(assume_mpp)
    if slide.mpp is None and tile_mpp is not None:
        raise SlideError(
            f"Slide {slide.name!r}: its file does not state a usable resolution "
            f"(microns per pixel), and tiles are cut at {tile_mpp:g} µm/px; give "
            "its resolution with --assume-mpp UM (0.5 for a 20x scan, 0.25 for "
            "40x)."
        )
    return slide


def model_resolution(pipeline):
    """The resolution, in µm/px, a trained pipeline reads slides at; None
    for a model that tiles level-0 pixels (made before it kept one)."""
    from ..pipeline import find_step
    from ..preprocessing import Tiler

    return getattr(find_step(pipeline, Tiler), "mpp", None)


def warn_level_zero_model(path):
    """Say (on stderr, even with --quiet: it changes what the numbers mean)
    that a model without a resolution reads level-0 pixels."""
    print(
        f"warning: model {str(path)!r} does not know the resolution it learnt "
        "at (made before models kept it, or trained without --mpp): every "
        "slide is tiled in level-0 pixels, so a 40x scan is read at twice the "
        "magnification of a 20x one. Retrain with --mpp to read every slide "
        "at one resolution.",
        file=sys.stderr,
    )


# -- output locations -----------------------------------------------------------


def _existing_ancestor(path):
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def check_out_dir(path, option="--out"):
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


def make_out_dir(path, option="--out"):
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


def check_out_file(path):
    """The ``train --out`` model file, refused before any work when it
    cannot be written."""
    path = Path(path).absolute()
    if path.is_dir():
        raise CommandError(
            f"--out {str(path)!r} is a folder; give the model file's name, e.g. "
            f"{str(path / 'model.sgm')!r}."
        )
    check_out_dir(path.parent, option=_folder_option(path))
    return path


def make_out_file_folder(path):
    make_out_dir(path.parent, option=_folder_option(path))
    return path


def _folder_option(path):
    return f"--out {str(path)!r}: its folder"


# -- model files ------------------------------------------------------------------

_TRAINED_PIPELINE = (
    "a trained sklearn-gastric pipeline (made by `sklearn-gastric train`, or "
    "a fitted Pipeline with a Tiler, a PatchSegmenter and a final classifier "
    "saved with sklearn_gastric.save_model)"
)


def load_pipeline(path, *, trust_pickle):
    """The trained pipeline of a model file, or a CommandError saying why not.

    A ``.sgm`` file is only ever read by the pickle-free loader; a pickle
    (``.joblib``) is loaded only with ``--trust-pickle``.
    """
    from .. import ModelFileError, load_model
    from ..utils._input_files import read_error_message

    try:
        model = load_model(path, trust_pickle=trust_pickle)
    except ModelFileError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        message = read_error_message(exc, "model file", path, "model file")
        raise CommandError(message) from exc
    _check_trained_pipeline(model, path)
    return model


def _check_trained_pipeline(model, path):
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from ..pipeline import find_step
    from ..preprocessing import Tiler
    from ..segmentation import PatchSegmenter

    holds = f"model file {str(path)!r} holds"
    if not isinstance(model, Pipeline):
        raise CommandError(
            f"{holds} a {type(model).__qualname__}, not {_TRAINED_PIPELINE}."
        )
    missing = [
        cls.__name__ for cls in (Tiler, PatchSegmenter) if find_step(model, cls) is None
    ]
    if missing:
        raise CommandError(
            f"{holds} a Pipeline without a {' or '.join(missing)} step, not "
            f"{_TRAINED_PIPELINE}."
        )
    try:
        check_is_fitted(find_step(model, PatchSegmenter))
        check_is_fitted(model)
    except NotFittedError:
        raise CommandError(
            f"{holds} an untrained Pipeline, not {_TRAINED_PIPELINE}."
        ) from None
    if not hasattr(model, "predict_proba"):
        raise CommandError(
            f"{holds} a Pipeline whose last step gives no class probabilities, "
            f"not {_TRAINED_PIPELINE}."
        )


def save_trained_pipeline(pipeline, path, metadata):
    from .. import save_model

    try:
        save_model(pipeline, path, metadata=metadata)
    except OSError as exc:
        raise CommandError(
            f"cannot write the model to {str(path)!r} ({exc.strerror or exc})."
        ) from exc
    return path
