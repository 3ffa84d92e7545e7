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
  outputs, within a run or across runs.
"""

import csv
import io
import itertools
import json
import os
from pathlib import Path

from ._version import __version__
from .graph._confidence import OOD_WARNING
from .utils import file_lock, write_text_atomic

__all__ = ["PredictionFolder", "ood_warning", "write_slide_outputs"]

RECORD_SUFFIX = "_prediction.json"
LESION_MAP_SUFFIX = "_lesion_map.png"
GEOJSON_SUFFIX = "_lesions.geojson"
TOP_TILES_SUFFIX = "_top_tiles.png"
GRAPH_SUFFIX = "_graph.png"
INDEX_FILES = {"json": "predictions.json", "csv": "predictions.csv"}
_LOCK = ".predictions.lock"
_RUNNING = "running"


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
        ``<stem>_graph.png`` (when it builds a graph).
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


def ood_warning(record):
    """The warning printed beside a slide's class when it is out of
    distribution; None when it is not (or the model gives no score)."""
    if not record.get("out_of_distribution"):
        return None
    return (
        f"{OOD_WARNING} (score {record['ood_score']:.3g} > threshold "
        f"{record['ood_threshold']:.3g})"
    )


class PredictionFolder:
    """Records and index of one prediction folder (created by the caller).

    Parameters
    ----------
    folder : pathlib.Path
        An existing, writable folder.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._pending = {}

    def claim(self, slide_path):
        """The output stem of a slide: its file stem, or ``stem_2``, ... when
        another slide of that stem already has records here.

        Parameters
        ----------
        slide_path : str or os.PathLike

        Returns
        -------
        stem : str
        """
        key = str(Path(slide_path).absolute())
        base = Path(slide_path).stem or "slide"
        for n in itertools.count(1):
            stem = base if n == 1 else f"{base}_{n}"
            record = self._record_path(stem)
            try:
                descriptor = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                if _read_json(record).get("path") == key:
                    self._pending[stem] = record
                    return stem
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump({"path": key, "status": _RUNNING, "pid": os.getpid()}, file)
            self._pending[stem] = record
            return stem

    def write_record(self, stem, record):
        """Write a slide's record (a prediction, or ``{"error": ...}``)."""
        record = {"stem": stem, **record}
        write_text_atomic(self._record_path(stem), json.dumps(record, indent=2))
        self._pending.pop(stem, None)

    def output_path(self, stem, suffix):
        """Where a slide's lesion map or GeoJSON goes."""
        return self.folder / f"{stem}{suffix}"

    def release(self):
        """Drop the claims of slides this run did not finish (interrupted),
        with any output already written for them: no file stays unlisted."""
        for stem, record in self._pending.items():
            if _read_json(record).get("status") != _RUNNING:
                continue  # an earlier run's record of the same slide stays
            for path in (
                self.output_path(stem, LESION_MAP_SUFFIX),
                self.output_path(stem, GEOJSON_SUFFIX),
                self.output_path(stem, TOP_TILES_SUFFIX),
                self.output_path(stem, GRAPH_SUFFIX),
                record,
            ):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        self._pending.clear()

    def write_index(self, file_format):
        """Rebuild the index from every record in the folder, under the lock.

        The index of ``file_format`` is written, and so is the other format's
        when the folder already has one (so that no index goes stale).

        Parameters
        ----------
        file_format : {"json", "csv"}

        Returns
        -------
        path : pathlib.Path
            The index of ``file_format``.
        document : dict
            What the JSON index holds.
        """
        with file_lock(self.folder / _LOCK):
            records = [
                record
                for record in map(
                    _read_json, sorted(self.folder.glob(f"*{RECORD_SUFFIX}"))
                )
                if "stem" in record
            ]
            slides = [r for r in records if "error" not in r]
            document = {
                "sklearn_gastric_version": __version__,
                "classes": _class_union(slides),
                "slides": slides,
                "errors": [r for r in records if "error" in r],
            }
            for name, filename in INDEX_FILES.items():
                if name == file_format or (self.folder / filename).exists():
                    text = (
                        json.dumps(document, indent=2)
                        if name == "json"
                        else _csv_text(document)
                    )
                    write_text_atomic(self.folder / filename, text)
        return self.folder / INDEX_FILES[file_format], document

    def _record_path(self, stem):
        return self.folder / f"{stem}{RECORD_SUFFIX}"


def _read_json(path):
    """A record's content; ``{}`` for a file being written or not ours."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _class_union(records):
    classes = []
    for record in records:
        for name in record.get("classes", []):
            if name not in classes:
                classes.append(name)
    return classes


def _csv_text(document):
    classes = document["classes"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["name", "path", "predicted_class"]
        + [f"p_{c}" for c in classes]
        + ["out_of_distribution", "ood_score"]
        + ["n_tissue_tiles", "n_lesion_regions", "top_tiles", "lesion_map_png"]
        + ["geojson", "model", "error"]
    )
    for record in document["slides"]:
        probabilities = record.get("probabilities", {})
        tiles = ";".join(f"{t['x']}:{t['y']}" for t in record.get("top_tiles", []))
        writer.writerow(
            [record["name"], record["path"], record["predicted_class"]]
            + [f"{probabilities[c]:.6f}" if c in probabilities else "" for c in classes]
            + [_csv_value(record.get("out_of_distribution"))]
            + [_csv_value(record.get("ood_score"))]
            + [record["n_tissue_tiles"], record["n_lesion_regions"], tiles]
            + [record["lesion_map_png"], record["geojson"], record["model"], ""]
        )
    for record in document["errors"]:
        writer.writerow(
            [record.get("name", ""), record.get("path", ""), ""]
            + [""] * (len(classes) + 2)
            + ["", "", "", "", "", record.get("model", ""), record["error"]]
        )
    return buffer.getvalue()


def _csv_value(value):
    """A JSON value in a CSV cell: empty for None, ``true``/``false`` for a flag."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.6g}"
