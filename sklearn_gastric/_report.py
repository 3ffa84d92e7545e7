"""``report.html``: one self-contained HTML page for a prediction folder.

The page lists every slide of the folder's index (the document
:meth:`~sklearn_gastric._prediction_folder.PredictionFolder.write_index`
returns) and the slides that failed; per slide, it shows the lesion map, the
top-K tile gallery and the slide graph, embedded as ``data:`` URIs, with the
top-K tiles and relative links to the slide's record and GeoJSON. It needs
no server, no network and no JavaScript: it opens from disk in any browser.
Every text comes from :func:`html.escape` (slide names are the user's).

A record may come from anyone who can write to the folder (a folder shared
by a cluster's jobs), so the pictures it names are not trusted: the page
embeds only the file the tool writes for that slide
(``<stem>_lesion_map.png``, ``<stem>_top_tiles.png``, ``<stem>_graph.png``),
read from the folder itself, a regular file whose real path stays in the
folder, of at most :data:`MAX_FIGURE_BYTES`, that starts with the PNG
signature (:func:`~sklearn_gastric.utils._files.read_file_in`). Any other
is not embedded: its figure says "missing" or "refused", and why.
"""

import base64
import html
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from ._prediction_folder import (
    GEOJSON_SUFFIX,
    GRAPH_SUFFIX,
    LESION_MAP_SUFFIX,
    RECORD_SUFFIX,
    REPORT_FILE,
    TOP_TILES_SUFFIX,
)
from .graph._confidence import OOD_WARNING
from .utils import write_text_atomic
from .utils._files import RefusedFileError, read_file_in

__all__ = ["MAX_FIGURE_BYTES", "REPORT_FILE", "write_report"]

#: The largest picture embedded in the page, in bytes.
MAX_FIGURE_BYTES = 32 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NA = "n/a"
_OOD_ROW = ' class="ood"'
_WIDE = ' class="wide"'

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial,
  sans-serif; margin: 0 auto; max-width: 1200px; padding: 1.5em 2em;
  color: #1d2329; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid #d0d7de;
  padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.meta { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left;
  vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.ood td { background: #fff4e5; }
.badge { display: inline-block; background: #b42318; color: #fff;
  font-weight: 600; font-size: 0.85em; padding: 0.1em 0.5em;
  border-radius: 0.3em; }
.scroll { overflow-x: auto; max-width: 100%; }
.back { font-size: 0.7em; font-weight: normal; margin-left: 0.8em; }
.ok { color: #57606a; }
.error { color: #b42318; white-space: pre-wrap; font-family: ui-monospace,
  SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
.slide { margin-bottom: 2.5em; }
.summary th { width: 12em; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; border: 1px solid #d0d7de; padding: 0.5em;
  background: #fafbfc; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; }
figure.wide { flex: 1 1 100%; }
figcaption { color: #57606a; font-size: 0.85em; margin-top: 0.3em; }
.missing { color: #57606a; font-style: italic; }
.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.85em; word-break: break-all; }
a { color: #0969da; }
.top { font-size: 0.85em; }
"""


def write_report(document, folder, path=None):
    """Write ``report.html``, one self-contained page for a prediction folder.

    The page has an index table of the slides (class, probabilities, the
    out-of-distribution warning, lesion regions), a table of the slides that
    failed, and per slide a section with its lesion map, top-K gallery and
    graph (PNG files embedded as ``data:`` URIs), its top-K tiles and
    relative links to its ``<stem>_prediction.json`` and
    ``<stem>_lesions.geojson``. It loads nothing from elsewhere and needs no
    JavaScript. The file appears under its name only once complete.

    Parameters
    ----------
    document : dict
        The index of the folder, as returned by
        :meth:`~sklearn_gastric._prediction_folder.PredictionFolder.write_index`:
        ``sklearn_gastric_version``, ``classes``, ``slides`` (the records of
        the slides predicted) and ``errors`` (those of the slides that
        failed). Optional keys of a record (``ood_score``,
        ``out_of_distribution``, ``ood_threshold``, ``top_tiles_png``,
        ``graph_png``, ...) may be absent.
    folder : str or os.PathLike
        The prediction folder, where the slides' files are. Only its own
        files are embedded (see the module's notes).
    path : str or os.PathLike, optional
        The page to write, in an existing folder; default
        ``folder / "report.html"``. The links to the slides' files are
        relative to its folder.

    Returns
    -------
    path : pathlib.Path
        The page written.
    """
    folder = Path(folder)
    path = folder / REPORT_FILE if path is None else Path(path)
    text = _page(document, folder, path.absolute().parent)
    return write_text_atomic(path, text)


def _e(value):
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _number(value, digits=3):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _NA
    return f"{value:.{digits}f}"


def _read_at(record):
    """The resolution the slide's tiles were read at, and the slide's own."""
    level, size = record.get("read_level"), record.get("tile_size")
    if _integer(level) == _NA or _integer(size) == _NA:
        return _NA  # a record of a run before the resolution was recorded
    where = f"level {level}, tiles of {size} px"
    read_mpp, mpp = record.get("read_mpp"), record.get("mpp")
    if _number(read_mpp) == _NA or _number(mpp) == _NA:
        return _e(f"{where}; the slide's resolution is unknown")
    return _e(f"{read_mpp:.3g} µm/px ({where}; the slide is {mpp:.3g} µm/px)")


def _integer(value):
    if isinstance(value, bool) or not isinstance(value, int):
        return _NA
    return str(value)


def _badge():
    return f'<span class="badge" role="alert">\N{WARNING SIGN} {_e(OOD_WARNING)}</span>'


def _ood_cell(record):
    """The OOD flag as HTML: the badge, "no", or "n/a" without a score."""
    flag = record.get("out_of_distribution")
    if flag is True:
        return _badge()
    if flag is False:
        return '<span class="ok">no</span>'
    return _NA


def _ood_summary(record):
    """The OOD flag with its score and threshold, when the model gives them."""
    score, threshold = record.get("ood_score"), record.get("ood_threshold")
    if _number(score) == _NA:
        return _ood_cell(record)
    return (
        f"{_ood_cell(record)} (score {_number(score)}, threshold {_number(threshold)})"
    )


def _predicted_probability(record):
    probabilities = record.get("probabilities")
    if not isinstance(probabilities, dict):
        return None
    return probabilities.get(record.get("predicted_class"))


def _page(document, folder, base):
    version = document.get("sklearn_gastric_version", _NA)
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    slides = list(document.get("slides") or [])
    errors = list(document.get("errors") or [])
    classes = list(document.get("classes") or [])
    anchors = [f"slide-{i}" for i in range(1, len(slides) + 1)]
    title = f"sklearn-gastric {version} \N{EM DASH} prediction report, {date}"
    n_ood = sum(record.get("out_of_distribution") is True for record in slides)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(slides)} slide(s) predicted, {len(errors)} '
        f"failed, {n_ood} out of distribution. Folder: "
        f'<span class="path">{_e(folder.absolute())}</span></p>',
        _index_table(slides, classes, anchors),
        _errors_table(errors),
    ]
    for record, anchor in zip(slides, anchors):
        parts.append(_slide_section(record, anchor, folder, base))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _index_table(slides, classes, anchors):
    rows = [
        '<h2 id="slides">Slides</h2>',
        '<div class="scroll"><table>',
        "<thead><tr><th>Slide</th><th>Predicted class</th>"
        "<th>Probability</th><th>Out of distribution</th>"
        + "".join(f"<th>p({_e(c)})</th>" for c in classes)
        + "<th>Lesion regions</th></tr></thead>",
        "<tbody>",
    ]
    if not slides:
        rows.append(
            f'<tr><td colspan="{5 + len(classes)}" class="missing">'
            "no slide predicted</td></tr>"
        )
    for record, anchor in zip(slides, anchors):
        probabilities = record.get("probabilities")
        probabilities = probabilities if isinstance(probabilities, dict) else {}
        flagged = record.get("out_of_distribution") is True
        rows.append(
            f"<tr{_OOD_ROW if flagged else ''}>"
            f'<td><a href="#{anchor}">{_e(record.get("name", _NA))}</a></td>'
            f"<td>{_e(record.get('predicted_class', _NA))}</td>"
            f'<td class="num">{_number(_predicted_probability(record))}</td>'
            f"<td>{_ood_cell(record)}</td>"
            + "".join(
                f'<td class="num">{_number(probabilities.get(c))}</td>' for c in classes
            )
            + f'<td class="num">{_integer(record.get("n_lesion_regions"))}</td>'
            "</tr>"
        )
    rows += ["</tbody>", "</table></div>"]
    return "\n".join(rows)


def _errors_table(errors):
    if not errors:
        return '<h2>Failed slides</h2>\n<p class="missing">none</p>'
    rows = [
        "<h2>Failed slides</h2>",
        "<table>",
        "<thead><tr><th>Slide</th><th>Path</th><th>Error</th></tr></thead>",
        "<tbody>",
    ]
    for record in errors:
        rows.append(
            f"<tr><td>{_e(record.get('name', _NA))}</td>"
            f'<td class="path">{_e(record.get("path", _NA))}</td>'
            f'<td class="error">{_e(record.get("error", _NA))}</td></tr>'
        )
    rows += ["</tbody>", "</table>"]
    return "\n".join(rows)


def _slide_section(record, anchor, folder, base):
    name = record.get("name", _NA)
    stem = _stem(record)
    flagged = record.get("out_of_distribution") is True
    probability = _number(_predicted_probability(record))
    if flagged:
        probability += " " + _badge()
    summary = [
        ("Predicted class", _e(record.get("predicted_class", _NA))),
        ("Probability", probability),
        ("Out of distribution", _ood_summary(record)),
        ("Tissue tiles", _integer(record.get("n_tissue_tiles"))),
        ("Lesion regions", _integer(record.get("n_lesion_regions"))),
        ("Lesion threshold", _number(record.get("lesion_threshold"))),
        ("Read at", _read_at(record)),
        ("Slide file", f'<span class="path">{_e(record.get("path", _NA))}</span>'),
        ("Model", f'<span class="path">{_e(record.get("model", _NA))}</span>'),
        (
            "Files",
            _link(folder / f"{stem}{RECORD_SUFFIX}", base, "prediction record (JSON)")
            + " &middot; "
            + _link(
                folder / f"{stem}{GEOJSON_SUFFIX}", base, "lesions (QuPath GeoJSON)"
            ),
        ),
    ]
    parts = [
        f'<section class="slide" id="{anchor}">',
        f'<h2>{_e(name)}<a class="back" href="#slides">\N{UPWARDS ARROW} index</a>'
        "</h2>",
        '<table class="summary"><tbody>',
        *(f"<tr><th>{_e(label)}</th><td>{value}</td></tr>" for label, value in summary),
        "</tbody></table>",
        _probabilities_table(record, flagged),
        '<div class="figures">',
        _figure(record, "lesion_map_png", folder, stem),
        _figure(record, "graph_png", folder, stem),
        _figure(record, "top_tiles_png", folder, stem),
        "</div>",
        _top_tiles_table(record.get("top_tiles")),
        "</section>",
    ]
    return "\n".join(parts)


def _probabilities_table(record, flagged):
    probabilities = record.get("probabilities")
    if not isinstance(probabilities, dict) or not probabilities:
        return '<p class="missing">no class probabilities</p>'
    classes = list(record.get("classes") or probabilities)
    head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    cells = "".join(
        f'<td class="num">{_number(probabilities.get(c))}</td>' for c in classes
    )
    badge = f"<td>{_badge()}</td>" if flagged else ""
    head += "<th></th>" if flagged else ""
    return (
        "<h3>Class probabilities</h3>\n<table><thead><tr>"
        f"{head}</tr></thead><tbody><tr{_OOD_ROW if flagged else ''}>"
        f"{cells}{badge}</tr></tbody></table>"
    )


def _top_tiles_table(tiles):
    if not isinstance(tiles, list) or not tiles:
        return '<h3>Top-K tiles</h3>\n<p class="missing">n/a</p>'
    rows = [
        "<h3>Top-K tiles (level-0 pixels)</h3>",
        '<table class="top"><thead><tr><th>Rank</th><th>x</th><th>y</th>'
        "<th>Size</th><th>Score</th></tr></thead><tbody>",
    ]
    for tile in tiles:
        tile = tile if isinstance(tile, dict) else {}
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="num">{_integer(tile.get(key))}</td>'
                for key in ("rank", "x", "y", "size")
            )
            + f'<td class="num">{_number(tile.get("score"), 2)}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _link(target, base, label):
    """A relative link to ``target`` from the page's folder, or "n/a"."""
    if not target.is_file():
        return f'<span class="missing">{_e(label)}: n/a</span>'
    relative = Path(os.path.relpath(target.absolute(), base)).as_posix()
    return f'<a href="{_e(quote(relative))}">{_e(label)}</a>'


def _stem(record):
    """The stem of a record's files; None if it could name a file elsewhere."""
    stem = record.get("stem")
    if stem is None:
        stem = Path(str(record.get("name", ""))).stem
    if not isinstance(stem, str) or not stem or {"/", "\\", "\0"} & set(stem):
        return None
    return stem


# key of the record: (suffix of the file, caption, wide)
_FIGURES = {
    "lesion_map_png": (LESION_MAP_SUFFIX, "Lesion map", False),
    "graph_png": (GRAPH_SUFFIX, "Slide graph", False),
    "top_tiles_png": (TOP_TILES_SUFFIX, "Top-K tiles", True),
}


def _png_bytes(record, key, folder, stem):
    """``(data, None)`` for the picture of ``key`` to embed, else ``(None,
    why)``; ``(None, None)`` when the record names no picture."""
    value = record.get(key)
    if not isinstance(value, str) or not value:
        return None, None
    suffix = _FIGURES[key][0]
    if stem is None:
        return None, f"refused: the record's stem {record.get('stem')!r} is no name"
    expected = f"{stem}{suffix}"
    # Only the name counts: the folder may have moved since the record was
    # written. Any other file is not this slide's picture.
    if Path(value).name != expected:
        return None, f"refused: the record names {value!r}, not {expected!r}"
    try:
        data = read_file_in(folder, expected, max_bytes=MAX_FIGURE_BYTES)
    except FileNotFoundError:
        return None, f"missing: no {expected!r} in the folder"
    except RefusedFileError as exc:
        return None, f"refused: {exc}"
    except OSError as exc:
        return None, f"refused: {expected!r} cannot be read ({exc.strerror or exc})"
    if not data.startswith(_PNG_SIGNATURE):
        return None, f"refused: {expected!r} is not a PNG file"
    return data, None


def _figure(record, key, folder, stem):
    suffix, caption, wide = _FIGURES[key]
    data, note = _png_bytes(record, key, folder, stem)
    if data is None:
        text = f"{caption}: {_NA if note is None else note}"
        return f'<figure><p class="missing">{_e(text)}</p></figure>'
    name = record.get("name", _NA)
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f"<figure{_WIDE if wide else ''}>"
        f'<img src="{uri}" alt="{_e(caption)} of {_e(name)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )
