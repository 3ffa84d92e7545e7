"""Sphinx configuration of the sklearn-gastric documentation."""

import os
import sys
from pathlib import Path

# Document the checkout this file belongs to, whatever is installed.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

from sphinx_gallery.sorting import ExplicitOrder  # noqa: E402

import sklearn_gastric  # noqa: E402

project = "sklearn-gastric"
author = "sklearn-gastric developers"
copyright = "2026, sklearn-gastric developers"
release = sklearn_gastric.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "skimage": ("https://scikit-image.org/docs/stable/", None),
    "joblib": ("https://joblib.readthedocs.io/en/stable/", None),
}
intersphinx_timeout = 10


def _online():
    """Links to other projects' docs need their inventories; offline (CI
    machines, laptops on a train) they would fail the ``-W`` build, so they
    are left out. SKLEARN_GASTRIC_DOCS_INTERSPHINX=0/1 forces the choice."""
    forced = os.environ.get("SKLEARN_GASTRIC_DOCS_INTERSPHINX")
    if forced is not None:
        return forced == "1"
    import socket

    try:
        socket.create_connection(("scikit-learn.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


if not _online():
    intersphinx_mapping = {}


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods for metadata routing; their
    # docstrings point into scikit-learn's own docs.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)


sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": ExplicitOrder(
        [
            "plot_quick_start.py",
            "plot_train_segmenter.py",
            "plot_stain_normalisation.py",
            "plot_lesion_map_qupath.py",
            "plot_grid_search_caching.py",
            "*",
        ]
    ),
    "abort_on_example_error": True,
    "write_computation_times": False,
}

myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-gastric {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
