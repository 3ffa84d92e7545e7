"""The inputs of ``sklearn-gastric train``: the labels CSV and the folder of
QuPath annotations, read and checked before any long work."""

import csv
import os
from pathlib import Path

from ._common import CommandError

__all__ = ["read_labels", "read_slide_annotations"]


def read_labels(labels_path, slides_dir):
    """Read ``LABELS.csv`` (columns ``slide,label``); return the slide paths
    and labels in file order, checking every slide is a regular file inside
    ``slides_dir`` (symbolic links resolved: no ``..``, absolute path or
    link leads out of it)."""
    from ..utils._input_files import read_error_message

    labels_path, slides_dir = Path(labels_path), Path(slides_dir)
    if not slides_dir.is_dir():
        problem = "is not a folder" if slides_dir.exists() else "does not exist"
        raise CommandError(f"slides folder {str(slides_dir)!r} {problem}.")
    where = f"labels file {str(labels_path)!r}"
    try:
        with open(labels_path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            columns = [c.strip() for c in reader.fieldnames or [] if c is not None]
    except OSError as exc:
        message = read_error_message(exc, "labels file", labels_path, "CSV file")
        raise CommandError(message) from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{where} is not a CSV file ({exc}).") from exc
    if not rows:
        raise CommandError(
            f"{where} has no rows; it needs a header 'slide,label' and one row "
            "per slide."
        )
    if not {"slide", "label"} <= set(columns):
        raise CommandError(
            f"{where} needs the columns 'slide' and 'label'; it has {columns}."
        )
    paths, labels = _read_rows(rows, columns, slides_dir, where)
    if len(set(labels)) < 2:
        raise CommandError(
            f"{where}: the slides need at least two different labels to train "
            f"a classifier; got {sorted(set(labels))}."
        )
    return paths, labels


def _read_rows(rows, columns, slides_dir, where):
    paths, labels, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        if None in row:  # csv.DictReader keeps a row's extra fields under None
            raise CommandError(
                f"{where}, line {line}: {len(columns) + len(row[None])} fields, "
                f"but the header has {len(columns)} ({', '.join(columns)})."
            )
        row = {k.strip(): (v or "").strip() for k, v in row.items()}
        name, label = row["slide"], row["label"]
        if not name or not label:
            raise CommandError(f"{where}, line {line}: empty slide or label.")
        if name in seen:
            raise CommandError(f"{where}, line {line}: slide {name!r} is listed twice.")
        seen.add(name)
        path = slides_dir / name
        problem = _slide_file_problem(name, path, slides_dir)
        if problem is not None:
            raise CommandError(f"{where}, line {line}: {problem}")
        paths.append(path)
        labels.append(label)
    return paths, labels


def _slide_file_problem(name, path, slides_dir):
    """Why the row's slide ``name`` (at ``path``) is no slide file of
    ``slides_dir``, or None."""
    from ..utils._input_files import not_a_regular_file, read_error_message

    real, folder = os.path.realpath(path), os.path.realpath(slides_dir)
    if os.path.commonpath([real, folder]) != folder:
        return (
            f"slide {name!r} leads to {real!r}, outside the slides folder "
            f"{str(slides_dir)!r}; the 'slide' column names files in that folder."
        )
    try:
        kind = not_a_regular_file(path)
    except FileNotFoundError:
        return f"no slide file {str(path)!r}."
    except OSError as exc:
        return read_error_message(exc, "slide file", path, "slide file")
    if kind is not None:
        return f"slide file {str(path)!r} is {kind}, not a slide file."
    return None


def _annotation_file(annotations_dir, slide_path):
    for candidate in (f"{slide_path.stem}.geojson", f"{slide_path.name}.geojson"):
        path = annotations_dir / candidate
        if path.is_file():
            return path
    return None


def read_slide_annotations(annotations, paths):
    """Every slide's lesion annotations, read before any long work."""
    from ..io import AnnotationError, read_annotations

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
