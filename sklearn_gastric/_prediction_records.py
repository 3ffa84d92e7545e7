"""The records of a prediction folder: read with a bound, checked field by
field before the index, the CSV or the report uses them, and the CSV index.

A record is ``<stem>_prediction.json``: a slide's prediction, the error that
stopped it, or (while a run predicts it) its claim. Records of other runs
and other tools share the folder: each is read with a bound of
:data:`MAX_RECORD_BYTES` and used only if every field the index, the CSV and
the report read is there, of its type.
"""

import csv
import io

from .utils._files import RefusedFileError, read_file_in
from .utils._json import dumps, loads

__all__ = ["MAX_RECORD_BYTES", "RECORD_SUFFIX", "RUNNING", "csv_text", "load_record"]

RECORD_SUFFIX = "_prediction.json"
#: The most bytes of a record read (one slide's record is a few KB).
MAX_RECORD_BYTES = 1 << 20
#: The ``status`` of a claim: a slide some run is predicting.
RUNNING = "running"


def read_json(folder, name):
    """A record's content; ``{}`` for a file being written or not ours."""
    try:
        content = loads(read_file_in(folder, name, max_bytes=MAX_RECORD_BYTES))
    except (OSError, ValueError, RecursionError):
        return {}
    return content if isinstance(content, dict) else {}


def load_record(folder, name):
    """``(record, None)`` for a record the index may use, ``(None, None)``
    for another run's claim (a slide being predicted), ``(None, why)`` for
    anything else."""
    try:
        data = read_file_in(folder, name, max_bytes=MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None, None  # removed since the folder was listed
    except (OSError, RefusedFileError) as exc:
        return None, str(exc)
    if not data:
        return None, None  # a claim being written (O_EXCL creates it empty)
    try:
        record = loads(data)
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON ({_first_line(exc)})"
    if not isinstance(record, dict):
        return None, f"a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object"
    if record.get("status") == RUNNING and "stem" not in record:
        return None, None  # another run's claim
    problem = _record_problem(record, name)
    return (None, problem) if problem is not None else (record, None)


_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _first_line(exc):
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# -- what a record holds ------------------------------------------------------------


def _text(value):
    return isinstance(value, str)


def _optional_text(value):
    return value is None or isinstance(value, str)


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_number(value):
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )


def _optional_flag(value):
    return value is None or isinstance(value, bool)


def _texts(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _probabilities(value):
    return isinstance(value, dict) and all(map(_optional_number, value.values()))


def _tiles(value):
    return isinstance(value, list) and all(
        isinstance(tile, dict)
        and all(_integer(tile.get(key)) for key in ("rank", "x", "y", "size"))
        and _optional_number(tile.get("score"))
        for tile in value
    )


# field: (check, what it must be, required)
_SLIDE_FIELDS = {
    "name": (_text, "a string", True),
    "path": (_optional_text, "a string or null", True),
    "classes": (_texts, "a list of strings", True),
    "predicted_class": (_optional_text, "a string or null", True),
    "probabilities": (_probabilities, "an object of numbers", True),
    "n_tissue_tiles": (_count, "a count", True),
    "top_tiles": (_tiles, "a list of tiles (integer rank, x, y, size)", True),
    "n_lesion_regions": (_count, "a count", True),
    "lesion_map_png": (_text, "a string", True),
    "geojson": (_text, "a string", True),
    "model": (_text, "a string", True),
    "lesion_threshold": (_optional_number, "a number or null", False),
    "ood_score": (_optional_number, "a number or null", False),
    "ood_threshold": (_optional_number, "a number or null", False),
    "out_of_distribution": (_optional_flag, "true, false or null", False),
    "top_tiles_png": (_optional_text, "a string or null", False),
    "graph_png": (_optional_text, "a string or null", False),
    "sklearn_gastric_version": (_text, "a string", False),
    # Records of runs before the resolution was recorded lack these.
    "mpp": (_optional_number, "a number or null", False),
    "read_mpp": (_optional_number, "a number or null", False),
    "read_level": (_count, "a count", False),
    "tile_size": (_count, "a count", False),
}
_ERROR_FIELDS = {
    "error": (_text, "a string", True),
    "name": (_text, "a string", False),
    "path": (_optional_text, "a string or null", False),
    "model": (_text, "a string", False),
}


def _record_problem(record, name):
    """What is wrong with a record read from the file ``name``; None if
    nothing (every field the index, the CSV and the report use is there,
    of its type)."""
    stem = name[: -len(RECORD_SUFFIX)]
    if record.get("stem") != stem:
        return f"'stem' is {_short(record.get('stem'))}, not {stem!r} (its file name)"
    fields = _ERROR_FIELDS if "error" in record else _SLIDE_FIELDS
    for key, (check, expected, required) in fields.items():
        if key not in record:
            if required:
                return f"no {key!r}"
        elif not check(record[key]):
            return f"{key!r} is {_short(record[key])}, not {expected}"
    return None


def _short(value, limit=60):
    try:
        text = dumps(value)
    except RecursionError:
        text = f"a nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def csv_text(document):
    classes = document["classes"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["name", "path", "predicted_class"]
        + [f"p_{c}" for c in classes]
        + ["out_of_distribution", "ood_score"]
        + ["n_tissue_tiles", "n_lesion_regions", "top_tiles", "lesion_map_png"]
        + ["geojson", "model", "mpp", "read_mpp", "read_level", "error"]
    )
    for record in document["slides"]:
        probabilities = record["probabilities"]
        tiles = ";".join(f"{t['x']}:{t['y']}" for t in record["top_tiles"])
        writer.writerow(
            [record["name"], _csv_value(record["path"])]
            + [_csv_value(record["predicted_class"])]
            + [_csv_value(probabilities.get(c), ".6f") for c in classes]
            + [_csv_value(record.get("out_of_distribution"))]
            + [_csv_value(record.get("ood_score"))]
            + [record["n_tissue_tiles"], record["n_lesion_regions"], tiles]
            + [record["lesion_map_png"], record["geojson"], record["model"]]
            + [_csv_value(record.get(key)) for key in ("mpp", "read_mpp")]
            + [_csv_value(record.get("read_level")), ""]
        )
    for record in document["errors"]:
        writer.writerow(
            [record.get("name", ""), _csv_value(record.get("path")), ""]
            + [""] * (len(classes) + 2)
            + ["", "", "", "", "", record.get("model", ""), "", "", ""]
            + [record["error"]]
        )
    return buffer.getvalue()


def _csv_value(value, spec=".6g"):
    """A JSON value in a CSV cell: empty for None, ``true``/``false`` for a
    flag, a number in ``spec``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return f"{value:{spec}}"
