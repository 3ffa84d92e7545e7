"""What importing the package costs: no torch until a network is used.

The torch-backed names are imported on first use (PEP 562), so each check
that a module is *not* imported runs in a fresh interpreter: this test
session has imported torch long before.
"""

import importlib
import pickle
import subprocess
import sys
import textwrap

import joblib
import pytest

import sklearn_gastric

TORCH = ("torch", "skorch")
# Slow to import, and imported only by what needs them: a network, a figure,
# an image measure, the default classifier of a baseline.
DEFERRED = (*TORCH, "matplotlib", "skimage", "sklearn.linear_model")
PACKAGES = [
    "sklearn_gastric",
    "sklearn_gastric._persistence",
    "sklearn_gastric.baselines",
    "sklearn_gastric.cli",
    "sklearn_gastric.datasets",
    "sklearn_gastric.graph",
    "sklearn_gastric.io",
    "sklearn_gastric.metrics",
    "sklearn_gastric.pipeline",
    "sklearn_gastric.preprocessing",
    "sklearn_gastric.segmentation",
    "sklearn_gastric.utils",
    "sklearn_gastric.visualization",
]
LAZY = {
    "sklearn_gastric": ["GCNSlideClassifier", "PatchSegmenter"],
    "sklearn_gastric.graph": [
        "GCN",
        "GCNSlideClassifier",
        "GraphConv",
        "collate_graphs",
        "normalize_adjacency",
    ],
    "sklearn_gastric.segmentation": [
        "PatchSegmenter",
        "SegmentationLoss",
        "VNet",
        "augment_patch",
        "dice_loss",
        "euclidean_loss",
    ],
}


def _run(code):
    """Run ``code`` in a fresh interpreter; return its stdout, stripped."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _loaded_after(statements):
    """Which of ``DEFERRED`` a fresh interpreter has imported after ``statements``."""
    report = f"print(','.join(m for m in {DEFERRED!r} if m in sys.modules))"
    output = _run(f"{statements}\nimport sys\n{report}").splitlines()
    return set(output[-1].split(",")) if output and output[-1] else set()


@pytest.mark.parametrize(
    "statements",
    [
        "import sklearn_gastric",
        "import sklearn_gastric; dir(sklearn_gastric); sklearn_gastric.__all__",
        "import sklearn_gastric.preprocessing",
        "import sklearn_gastric.io",
        "import sklearn_gastric.datasets",
        "import sklearn_gastric.visualization",
        "import sklearn_gastric.graph, sklearn_gastric.segmentation",
        "import sklearn_gastric.cli",
        "from sklearn_gastric import (OtsuFilter, StainNormalizer, TileBag, Tiler,"
        " load_model, open_slide, save_model)",
        "from sklearn_gastric.segmentation import augment_patch, sample_patches",
    ],
)
def test_import_does_not_load_torch(statements):
    assert not _loaded_after(statements) & set(TORCH)


@pytest.mark.parametrize("package", ["sklearn_gastric", "sklearn_gastric.cli"])
def test_import_defers_every_slow_dependency(package):
    assert _loaded_after(f"import {package}") == set()


@pytest.mark.parametrize("command", [[], ["info"], ["train"], ["predict"], ["demo"]])
def test_cli_help_does_not_load_torch(command):
    statements = (
        "import contextlib, io\n"
        "from sklearn_gastric.cli import main\n"
        "with contextlib.suppress(SystemExit), "
        "contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main({[*command, '--help']!r})"
    )
    assert _loaded_after(statements) == set()


def test_a_torch_backed_name_loads_torch_when_used():
    # The negative checks above mean something only if this one sees torch.
    loaded = _loaded_after("from sklearn_gastric import PatchSegmenter")
    assert set(TORCH) <= loaded


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name):
    package = importlib.import_module(name)
    listed = dir(package)
    for attribute in package.__all__:
        assert attribute in listed, f"{name}.{attribute} is not in dir()"
        assert getattr(package, attribute) is not None


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_names_are_the_defining_modules_objects(name):
    package = importlib.import_module(name)
    for attribute in LAZY[name]:
        value = getattr(package, attribute)
        defining = importlib.import_module(value.__module__)
        assert getattr(defining, attribute) is value
        # Stored on first use: later lookups skip __getattr__.
        assert vars(package)[attribute] is value


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        sklearn_gastric.Nope  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'Nope'"):
        from sklearn_gastric import Nope  # noqa: F401


def test_pickles_of_lazy_classes_load_in_a_fresh_interpreter(tmp_path):
    models = [sklearn_gastric.PatchSegmenter(), sklearn_gastric.GCNSlideClassifier()]
    for model in models:
        # Pickles name the defining module, which imports as any module does.
        assert type(model).__module__.encode() in pickle.dumps(model)
    path = tmp_path / "models.joblib"
    joblib.dump(models, path)
    loaded = _run(
        f"""
        import joblib
        for model in joblib.load({str(path)!r}):
            print(type(model).__module__, type(model).__qualname__)
        """
    )
    assert loaded.splitlines() == [
        "sklearn_gastric.segmentation._segmenter PatchSegmenter",
        "sklearn_gastric.graph._classifier GCNSlideClassifier",
    ]


def test_model_files_save_and_load_in_a_fresh_interpreter(tmp_path):
    # save_model and load_model import the archive's writer and reader when
    # called; from a cold start they must still find them.
    path = tmp_path / "topk.sgm"
    output = _run(
        f"""
        from sklearn_gastric import TopKSelector, load_model, save_model
        save_model(TopKSelector(k=3), {str(path)!r})
        print(load_model({str(path)!r}))
        """
    )
    assert output == "TopKSelector(k=3)"
