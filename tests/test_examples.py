"""The gallery examples and the API reference stay in step with the code."""

import ast
import importlib
import re
import runpy
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
SUBPACKAGES = [
    "baselines",
    "datasets",
    "graph",
    "io",
    "metrics",
    "preprocessing",
    "segmentation",
    "utils",
    "visualization",
]


def test_there_are_examples():
    names = {path.name for path in EXAMPLES}
    assert {
        "plot_quick_start.py",
        "plot_train_segmenter.py",
        "plot_grid_search_caching.py",
        "plot_lesion_map_qupath.py",
        "plot_stain_normalisation.py",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_has_a_gallery_title_and_cells(path):
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert docstring is not None, f"{path.name} has no docstring"
    over, title, under = docstring.strip("\n").splitlines()[:3]
    assert set(over) == {"="} and over == under, path.name
    assert len(over) >= len(title.strip()) > 0, path.name
    assert "\n# %%\n" in source, f"{path.name} has no '# %%' cell"
    assert "sklearn_gastric._" not in source, f"{path.name} uses a private module"


def _documented_names():
    text = (ROOT / "docs" / "api.rst").read_text()
    documented = {}
    module = None
    for line in text.splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line)
        if match:
            module = match.group(1)
        elif module and re.fullmatch(r"   [A-Za-z_]\w*", line):
            documented.setdefault(module, set()).add(line.strip())
    return documented


def test_api_reference_lists_every_public_name():
    documented = _documented_names()
    for name in SUBPACKAGES:
        module = importlib.import_module(f"sklearn_gastric.{name}")
        assert documented.get(module.__name__) == set(module.__all__), name
    # Top-level names: re-exports from a subpackage, or documented as
    # sklearn_gastric's own.
    import sklearn_gastric

    in_subpackages = set().union(
        *(names for module, names in documented.items() if module != "sklearn_gastric")
    )
    own = set(sklearn_gastric.__all__) - in_subpackages - {"__version__"}
    assert documented.get("sklearn_gastric", set()) == own


def test_stain_normalisation_example_runs(cmu_slide_path, he_target_path, monkeypatch):
    # The fastest example (no training): real slide, three methods.
    monkeypatch.setenv("SKLEARN_GASTRIC_DATA", str(Path(cmu_slide_path).parent))
    assert Path(he_target_path).parent == Path(cmu_slide_path).parent
    try:
        namespace = runpy.run_path(
            str(ROOT / "examples" / "plot_stain_normalisation.py")
        )
    finally:
        plt.close("all")
    views = namespace["views"]
    assert list(views) == ["original", "target", "macenko", "reinhard", "vahadane"]
    # Every method brings the tissue's mean optical density closer to the
    # target's than the original was.
    od = {
        name: namespace["mean_optical_density"](image) for name, image in views.items()
    }
    distance = {name: abs(od[name] - od["target"]).sum() for name in od}
    for method in ["macenko", "reinhard", "vahadane"]:
        assert distance[method] < 0.5 * distance["original"], method
