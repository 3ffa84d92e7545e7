"""``report.html``: one self-contained page for a prediction folder."""

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.pyplot as plt
import numpy as np
import pytest
from cli_support import run_cli

from sklearn_gastric._prediction_folder import PredictionFolder
from sklearn_gastric._report import write_report
from sklearn_gastric.graph._confidence import OOD_WARNING

HOSTILE = "<script>alert(1)</script>.svs"
PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """The tags and texts of a page, with the text of each table row and of
    each slide section."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.text = [], set(), []
        self.rows, self.sections = [], {}
        self._row, self._section = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "tr":
            self._row = []
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = []

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(" ".join(self._row))
            self._row = None
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None:
            self._row.append(data)
        if self._section is not None:
            self.sections[self._section].append(data)

    def attributes(self, name):
        return [(t, a[name]) for t, a in self.tags if name in a]

    def all_text(self):
        return " ".join(self.text)

    def index_row(self, name):
        """The text of the one table row starting with a slide's name."""
        (row,) = [r for r in self.rows if r.startswith(name)]
        return row

    def section_of(self, name):
        (text,) = [" ".join(t) for t in self.sections.values() if name in " ".join(t)]
        return text


def _parse(path):
    page = _Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    return page


def _write_png(path, value):
    figure, axes = plt.subplots(figsize=(1, 1), dpi=20)
    axes.imshow(np.full((4, 6), value), vmin=0, vmax=1)
    figure.savefig(path)
    plt.close(figure)
    return str(path)


def _record(out, stem, name, predicted, p_hgin, **optional):
    return {
        "name": name,
        "path": f"/slides/{name}",
        "classes": ["HGIN", "negative"],
        "predicted_class": predicted,
        "probabilities": {"HGIN": p_hgin, "negative": 1 - p_hgin},
        "n_tissue_tiles": 12,
        "top_tiles": [
            {"rank": 1, "x": 0, "y": 64, "size": 64, "score": 3.5},
            {"rank": 2, "x": 128, "y": 64, "size": 64, "score": 1.25},
        ],
        "n_lesion_regions": 2,
        "lesion_threshold": 0.5,
        "lesion_map_png": _write_png(out / f"{stem}_lesion_map.png", 0.2),
        "geojson": str(out / f"{stem}_lesions.geojson"),
        "model": "/models/model.sgm",
        **optional,
    }


@pytest.fixture
def folder(tmp_path):
    """Two slides and a failed one: "plain slide#1.svs" without any optional
    key, and the hostile name, out of distribution, with every picture."""
    out = tmp_path / "out"
    out.mkdir()
    predictions = PredictionFolder(out)
    plain = _record(out, "plain slide#1", "plain slide#1.svs", "negative", 0.2)
    hostile = _record(
        out,
        "hostile",
        HOSTILE,
        "HGIN",
        0.875,
        ood_score=2.0,
        ood_threshold=0.3,
        out_of_distribution=True,
        top_tiles_png=_write_png(out / "hostile_top_tiles.png", 0.6),
        graph_png=_write_png(out / "hostile_graph.png", 0.9),
    )
    for stem, record in (("plain slide#1", plain), ("hostile", hostile)):
        predictions.write_record(stem, record)
        (out / f"{stem}_lesions.geojson").write_text('{"type": "FeatureCollection"}')
    predictions.write_record(
        "broken", {"name": "broken.svs", "path": "/slides/broken.svs", "error": "bad"}
    )
    _, document = predictions.write_index("json")
    return out, document


def test_index_lists_every_slide_with_its_class_and_probability(folder):
    out, document = folder
    path = write_report(document, out)
    assert path == out / "report.html"
    page = _parse(path)
    version = document["sklearn_gastric_version"]
    assert f"<title>sklearn-gastric {version} " in path.read_text(encoding="utf-8")
    plain = page.index_row("plain slide#1.svs")
    assert "negative" in plain and "0.800" in plain and "0.200" in plain
    hostile = page.index_row(HOSTILE)
    assert "0.875" in hostile and "0.125" in hostile
    failed = page.index_row("broken.svs")
    assert "bad" in failed


def test_out_of_distribution_badge_only_beside_the_flagged_slide(folder):
    out, document = folder
    page = _parse(write_report(document, out))
    assert OOD_WARNING in page.section_of(HOSTILE)
    assert OOD_WARNING not in page.section_of("plain slide#1.svs")
    # Never the flagged slide's probability without the warning beside it.
    rows = [r for r in page.rows if "0.875" in r]
    assert len(rows) >= 3  # index, summary, class probabilities
    assert all(OOD_WARNING in r for r in rows)
    assert all(OOD_WARNING not in r for r in page.rows if "plain slide#1" in r)
    # The plain slide has no OOD keys at all: "n/a", no failure.
    assert "n/a" in page.index_row("plain slide#1.svs")


def test_anchors_resolve_and_file_links_are_relative(folder):
    out, document = folder
    path = write_report(document, out)
    page = _parse(path)
    hrefs = [value for _, value in page.attributes("href")]
    anchors = [h for h in hrefs if h.startswith("#")]
    assert all(h[1:] in page.ids for h in anchors)
    assert {"#slide-1", "#slide-2"} <= set(anchors)
    files = [unquote(h) for h in hrefs if not h.startswith("#")]
    assert sorted(files) == sorted(
        f"{stem}{suffix}"
        for stem in ("plain slide#1", "hostile")
        for suffix in ("_prediction.json", "_lesions.geojson")
    )
    assert all(not Path(f).is_absolute() and (out / f).is_file() for f in files)
    # A report elsewhere links back into the folder, still relatively.
    (out.parent / "elsewhere").mkdir()
    other = _parse(write_report(document, out, out.parent / "elsewhere" / "r.html"))
    elsewhere = [unquote(h) for _, h in other.attributes("href") if h[0] != "#"]
    assert all(f.startswith("../out/") for f in elsewhere) and len(elsewhere) == 4
    assert all((out.parent / "elsewhere" / f).is_file() for f in elsewhere)


def test_nothing_is_fetched_and_pictures_are_embedded_byte_for_byte(folder):
    out, document = folder
    page = _parse(write_report(document, out))
    for _, value in page.attributes("src") + page.attributes("href"):
        assert not value.lower().startswith(("http", "file:", "//"))
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe")]
    sources = [value for tag, value in page.attributes("src") if tag == "img"]
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    on_disk = sorted(p.read_bytes() for p in out.glob("*.png"))
    assert len(embedded) == 4  # 1 lesion map + 3 pictures of the flagged slide
    assert embedded == on_disk and all(b.startswith(PNG) for b in embedded)


def test_slide_names_are_escaped(folder):
    out, document = folder
    path = write_report(document, out)
    page = _parse(path)
    assert not [tag for tag, _ in page.tags if tag == "script"]
    assert HOSTILE in page.all_text()
    assert "<script>" not in path.read_text(encoding="utf-8")


def test_missing_optional_keys_and_files(tmp_path):
    document = {
        "sklearn_gastric_version": "0.1",
        "classes": ["a", "b"],
        "slides": [
            {
                "stem": "old",
                "name": "old.svs",
                "classes": ["a"],
                "predicted_class": "a",
                "probabilities": {"a": 1.0},
                "lesion_map_png": str(tmp_path / "gone.png"),
                "top_tiles_png": None,
            }
        ],
        "errors": [{"name": "x.svs", "error": "unreadable"}],
    }
    page = _parse(write_report(document, tmp_path))
    row = page.index_row("old.svs")
    assert "1.000" in row and "n/a" in row  # no p(b), no OOD flag
    assert not page.attributes("src")
    assert not [h for _, h in page.attributes("href") if not h.startswith("#")]
    assert OOD_WARNING not in page.all_text()


def test_predict_report_on_the_command_line(cli_model, cli_cohort, tmp_path):
    out = tmp_path / "out"
    slide = cli_cohort["paths"][0]
    result = run_cli("predict", cli_model, slide, "--out", out, "--report")
    assert result.returncode == 0, result.stderr
    report = out / "report.html"
    assert f"wrote {report}" in result.stderr
    page = _parse(report)
    document = json.loads((out / "predictions.json").read_text())
    (record,) = document["slides"]
    row = page.index_row(slide.name)
    p = record["probabilities"][record["predicted_class"]]
    assert record["predicted_class"] in row and f"{p:.3f}" in row
    sources = [value for tag, value in page.attributes("src") if tag == "img"]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
