"""The output folder of ``sklearn-gastric predict``: per-slide records and an index.

Each slide predicted into a folder gets ``<stem>_prediction.json`` (its
record: the prediction, or the error that stopped it) beside its
``<stem>_lesion_map.png`` and ``<stem>_lesions.geojson``. The index,
``predictions.json`` (and ``predictions.csv`` when asked for), is rebuilt
from every record in the folder under a lock, so that:

- a later run into the same folder adds its slides to the earlier ones (a
  slide predicted again replaces its own record), and the index always
  lists every slide whose files are there;
- runs side by side on one folder lose nothing: each writes its records,
  then rebuilds the index holding the lock, so the last to finish sees all;
- a stem is claimed atomically (``O_EXCL``) before a slide's files are
  written, so two different slides with the same file name never share
  outputs, within a run or across runs; a stem too long for the file
  system is shortened (its start and a hash of the whole name);
- the folder may be shared with others, so nothing in it is trusted: a
  record is read only if it is a regular file of at most
  :data:`MAX_RECORD_BYTES` inside the folder, and used only if every field
  the index, the CSV and the report read has the right type. Any other is
  skipped, with a warning, and listed among the index's errors as
  ``"<file>: malformed record: <why>"``;
- a run waits at most :data:`LOCK_TIMEOUT` seconds (or
  ``SKLEARN_GASTRIC_LOCK_TIMEOUT``) for the lock, saying so after a few
  seconds, then gives up with :class:`~sklearn_gastric.utils._files.LockTimeoutError`;
- ``report.html``, when asked for or already in the folder, is rebuilt
  under the same lock as the index, from the same records, so the two
  always list the same slides.

Every JSON file is strict JSON (:func:`~sklearn_gastric.utils._json.dumps`):
a non-finite number is written ``null``.
"""

import itertools
import math
import os
import warnings
from pathlib import Path

from ._prediction_records import (
    MAX_RECORD_BYTES,
    RECORD_SUFFIX,
    RUNNING,
    csv_text,
    load_record,
    read_json,
)
from ._version import __version__
from .graph._confidence import OOD_WARNING
from .utils import file_lock, write_text_atomic
from .utils._files import (
    fit_name,
    name_max,
    raise_if_no_space,
)
from .utils._json import dumps

__all__ = [
    "LOCK_TIMEOUT",
    "LOCK_TIMEOUT_VARIABLE",
    "MAX_RECORD_BYTES",
    "PredictionFolder",
    "fit_stem",
    "lock_timeout",
    "ood_warning",
    "write_slide_outputs",
]

LESION_MAP_SUFFIX = "_lesion_map.png"
GEOJSON_SUFFIX = "_lesions.geojson"
TOP_TILES_SUFFIX = "_top_tiles.png"
GRAPH_SUFFIX = "_graph.png"
INDEX_FILES = {"json": "predictions.json", "csv": "predictions.csv"}
REPORT_FILE = "report.html"
#: Seconds a run waits for the folder's lock before giving up.
LOCK_TIMEOUT = 600.0
#: The environment variable that overrides :data:`LOCK_TIMEOUT` (seconds).
LOCK_TIMEOUT_VARIABLE = "SKLEARN_GASTRIC_LOCK_TIMEOUT"
_LOCK_NOTICE_AFTER = 3.0
_LOCK = ".predictions.lock"
# Room left in a file name after the stem: the longest suffix and "_<n>".
_SUFFIX_BYTES = max(map(len, (RECORD_SUFFIX, GEOJSON_SUFFIX, LESION_MAP_SUFFIX)))
_NUMBER_BYTES = 8


def write_slide_outputs(prediction, folder, stem, *, max_size=1024):
    """Write one slide's lesion map PNG, QuPath GeoJSON, top-K gallery and
    graph PNGs; return its record.

    The one writer of per-slide outputs, for ``predict`` and the demo. The
    lesion map carries the top-K tiles in an inset gallery; the separate
    gallery PNG adds their scores and coordinates (the tiles are read once
    for both).

    Parameters
    ----------
    prediction : SlidePrediction
        The slide's prediction (:func:`~sklearn_gastric.pipeline.predict_slides`).
    folder : pathlib.Path
        An existing, writable folder.
    stem : str
        The files are ``<stem>_lesion_map.png``, ``<stem>_lesions.geojson``,
        ``<stem>_top_tiles.png`` (when the pipeline selects tiles) and
        ``<stem>_graph.png`` (when it builds a graph); a stem too long for
        the file system is shortened (:func:`fit_stem`).
    max_size : int, default=1024
        Longest side of the lesion map's thumbnail.

    Returns
    -------
    record : dict
        ``prediction.to_dict()`` with ``lesion_map_png``, ``geojson``,
        ``top_tiles_png`` and ``graph_png``, the files written (None for a
        file not written).
    """
    from .utils import save_figure
    from .visualization import (
        LesionMapDisplay,
        SlideGraphDisplay,
        TileGalleryDisplay,
        export_geojson,
    )

    folder = Path(folder)
    stem = fit_stem(folder, stem)
    display = LesionMapDisplay.from_prediction(
        prediction, max_size=max_size, gallery=True
    )
    png = save_figure(display.figure_, folder / f"{stem}{LESION_MAP_SUFFIX}")
    geojson = export_geojson(prediction, folder / f"{stem}{GEOJSON_SUFFIX}")
    gallery = graph = None
    if len(prediction.top_coords):
        figure = TileGalleryDisplay.from_prediction(
            prediction, tiles=display.tiles
        ).figure_
        gallery = str(save_figure(figure, folder / f"{stem}{TOP_TILES_SUFFIX}"))
    if prediction.graph is not None and prediction.graph.coords is not None:
        figure = SlideGraphDisplay(prediction.graph).plot().figure_
        graph = str(save_figure(figure, folder / f"{stem}{GRAPH_SUFFIX}"))
    return {
        **prediction.to_dict(),
        "lesion_map_png": str(png),
        "geojson": str(geojson),
        "top_tiles_png": gallery,
        "graph_png": graph,
    }


def fit_stem(folder, stem):
    """``stem``, or a shorter stem when the names of its files in ``folder``
    (with the longest suffix and a ``_<n>`` for a namesake) would be longer
    than its file system takes: its start and a hash of the whole stem, the
    same for the same stem.

    Parameters
    ----------
    folder : pathlib.Path
        An existing folder.
    stem : str

    Returns
    -------
    stem : str
    """
    return fit_name(stem, name_max(folder) - _SUFFIX_BYTES - _NUMBER_BYTES)


def ood_warning(record):
    """The warning printed beside a slide's class when it is out of
    distribution; None when it is not (or the model gives no score)."""
    if not record.get("out_of_distribution"):
        return None
    return (
        f"{OOD_WARNING} (score {_short_number(record.get('ood_score'))} > "
        f"threshold {_short_number(record.get('ood_threshold'))})"
    )


def _short_number(value):
    return "n/a" if value is None else f"{value:.3g}"


def lock_timeout():
    """Seconds to wait for a folder's lock: ``SKLEARN_GASTRIC_LOCK_TIMEOUT``
    when set, else :data:`LOCK_TIMEOUT`; None (no limit) for ``inf``.

    Returns
    -------
    seconds : float or None

    Raises
    ------
    ValueError
        The variable holds no positive number of seconds.
    """
    text = os.environ.get(LOCK_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return LOCK_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:
        raise ValueError(
            f"{LOCK_TIMEOUT_VARIABLE}={text!r}: give the seconds to wait for a "
            "prediction folder's lock, a positive number (or inf)."
        )
    return None if math.isinf(seconds) else seconds


class PredictionFolder:
    """Records and index of one prediction folder (created by the caller).

    Parameters
    ----------
    folder : pathlib.Path
        An existing, writable folder.
    lock_timeout : float, default=LOCK_TIMEOUT
        Seconds to wait for the folder's lock (held by another run) before
        giving up; None waits for as long as it takes.
    notify : callable, default=None
        Called with each message for the user: a record skipped as
        malformed, a wait for the lock. By default, a warning.
    """

    def __init__(self, folder, *, lock_timeout=LOCK_TIMEOUT, notify=None):
        self.folder = Path(folder)
        self.lock_timeout = lock_timeout
        self.notify = notify
        self._pending = {}

    def claim(self, slide_path):
        """The output stem of a slide: its file stem, or ``stem_2``, ... when
        another slide of that stem already has records here.

        A stem too long for the file system (with the longest suffix) is
        shortened to its start and a hash of the whole stem.

        Parameters
        ----------
        slide_path : str or os.PathLike

        Returns
        -------
        stem : str

        Raises
        ------
        NoSpaceError
            The device is full; nothing of the claim is left.
        """
        key = str(Path(slide_path).absolute())
        base = fit_stem(self.folder, Path(slide_path).stem or "slide")
        for n in itertools.count(1):
            stem = base if n == 1 else f"{base}_{n}"
            record = self._record_path(stem)
            try:
                descriptor = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                if read_json(self.folder, record.name).get("path") == key:
                    self._pending[stem] = (record, False)
                    return stem
                continue
            except OSError as exc:
                raise_if_no_space(exc, record)
                raise
            # Pending before it is written: an interruption now still
            # removes it.
            self._pending[stem] = (record, True)
            claim = dumps({"path": key, "status": RUNNING, "pid": os.getpid()})
            data = claim.encode("utf-8")
            try:
                # Unbuffered: a buffer that failed to flush fails again on
                # close, and that second error would hide the first.
                while data:
                    data = data[os.write(descriptor, data) :]
            except OSError as exc:
                raise_if_no_space(exc, record)
                raise
            finally:
                os.close(descriptor)
            return stem

    def write_record(self, stem, record):
        """Write a slide's record (a prediction, or ``{"error": ...}``).

        An error record replaces whatever outputs the slide had in the
        folder: only the slides of the index have pictures.
        """
        if "error" in record:
            self._remove_outputs(stem)
        record = {"stem": stem, **record}
        write_text_atomic(self._record_path(stem), dumps(record, indent=2))
        self._pending.pop(stem, None)

    def output_path(self, stem, suffix):
        """Where a slide's lesion map or GeoJSON goes."""
        return self.folder / f"{stem}{suffix}"

    def release(self):
        """Drop the claims of slides this run did not finish (interrupted, or
        stopped by an error), with any output already written for them: no
        file stays unlisted."""
        for stem, (record, created) in self._pending.items():
            if (
                not created
                and read_json(self.folder, record.name).get("status") != RUNNING
            ):
                continue  # an earlier run's record of the same slide stays
            self._remove_outputs(stem)
            _unlink(record)
        self._pending.clear()

    def _remove_outputs(self, stem):
        for suffix in (
            LESION_MAP_SUFFIX,
            GEOJSON_SUFFIX,
            TOP_TILES_SUFFIX,
            GRAPH_SUFFIX,
        ):
            _unlink(self.output_path(stem, suffix))

    def write_index(self, file_format, *, report=False):
        """Rebuild the index (and the report) from every record in the
        folder, under the lock.

        The index of ``file_format`` is written, and so is the other format's
        when the folder already has one, and ``report.html`` when ``report``
        is true or the folder already has one (so that nothing goes stale).
        A malformed record is skipped with a message (``notify``) and listed
        among the errors.

        Parameters
        ----------
        file_format : {"json", "csv"}
        report : bool, default=False
            Write ``report.html``
            (:func:`~sklearn_gastric._report.write_report`).

        Returns
        -------
        path : pathlib.Path
            The index of ``file_format``.
        document : dict
            What the JSON index holds.

        Raises
        ------
        LockTimeoutError
            Another process held the lock for longer than ``lock_timeout``.
        NoSpaceError
            The device is full; the files stay as they were.
        """
        from ._report import write_report

        timeout = self.lock_timeout
        with file_lock(
            self.folder / _LOCK,
            timeout=timeout,
            on_wait=self._waiting,
            notice_after=_LOCK_NOTICE_AFTER
            if timeout is None
            else min(_LOCK_NOTICE_AFTER, timeout / 2),
        ):
            document = self._document()
            for name, filename in INDEX_FILES.items():
                if name == file_format or (self.folder / filename).exists():
                    text = (
                        dumps(document, indent=2)
                        if name == "json"
                        else csv_text(document)
                    )
                    write_text_atomic(self.folder / filename, text)
            if report or (self.folder / REPORT_FILE).exists():
                write_report(document, self.folder)
        return self.folder / INDEX_FILES[file_format], document

    def _document(self):
        slides, errors = [], []
        for path in sorted(self.folder.glob(f"*{RECORD_SUFFIX}")):
            record, problem = load_record(self.folder, path.name)
            if problem is not None:
                message = f"{path.name}: malformed record: {problem}"
                self._tell(f"skipped {message}")
                errors.append({"name": path.name, "path": str(path), "error": message})
            elif record is not None:
                (errors if "error" in record else slides).append(record)
        return {
            "sklearn_gastric_version": __version__,
            "classes": _class_union(slides),
            "slides": slides,
            "errors": errors,
        }

    def _waiting(self, lock):
        self._tell(
            f"waiting for the lock {str(lock)!r}: another run on this folder "
            "holds it"
            + (
                ""
                if self.lock_timeout is None
                else f" (for {self.lock_timeout:g} s at most)"
            )
            + "."
        )

    def _tell(self, message):
        if self.notify is None:
            warnings.warn(message, stacklevel=3)
        else:
            self.notify(message)

    def _record_path(self, stem):
        return self.folder / f"{stem}{RECORD_SUFFIX}"


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already, or not a file this run may remove (a folder)


def _class_union(records):
    classes = []
    for record in records:
        for name in record.get("classes", []):
            if name not in classes:
                classes.append(name)
    return classes
