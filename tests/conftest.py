"""Shared fixtures: the real slides, fetched the way a user's clone gets them;
the synthetic cohort and the tiny trained segmenter that most modules use."""

import copy
import os

import matplotlib
import pytest
import torch
from instance_generator import TINY_SEGMENTER

from sklearn_gastric import PatchSegmenter, Slide
from sklearn_gastric.datasets import make_gastric_slides, make_patch_dataset

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Torch on one intra-op thread for the whole suite.

    The networks here are tiny: on a busy 2-core machine (CI, parallel test
    sessions) two OpenMP threads spin against each other and train them 5-10
    times slower. A fixed thread count also keeps results bit-identical
    between runs (float sums depend on how work is split over threads).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_home(tmp_path_factory):
    """The data cache: ``SKLEARN_GASTRIC_DATA`` when set (CI keeps it between
    runs), else a temporary folder so the tests never write to ``~``."""
    configured = os.environ.get("SKLEARN_GASTRIC_DATA")
    if configured:
        return configured
    return tmp_path_factory.mktemp("sklearn_gastric_data")


@pytest.fixture(scope="session")
def cmu_slide_path(data_home):
    """Path of the real Aperio slide CMU-1-Small-Region (2220x2967, 20x)."""
    from sklearn_gastric.datasets import fetch_cmu_small_region

    return fetch_cmu_small_region(data_home)


@pytest.fixture(scope="session")
def he_target_path(data_home):
    """Path of the real 1000x1000 H&E target image."""
    from sklearn_gastric.datasets import fetch_he_target

    return fetch_he_target(data_home)


@pytest.fixture(scope="session")
def cli_cohort(tmp_path_factory):
    """The command-line tests' cohort: four annotated 256-pixel TIFF slides."""
    from cli_support import make_cli_cohort

    return make_cli_cohort(tmp_path_factory.mktemp("cli_cohort"))


@pytest.fixture(scope="session")
def cli_model(cli_cohort, tmp_path_factory):
    """A tiny pipeline trained by ``sklearn-gastric train``, as ``model.sgm``."""
    from cli_support import train_cli_model

    return train_cli_model(
        cli_cohort, tmp_path_factory.mktemp("cli_model") / "model.sgm"
    )


@pytest.fixture(scope="session")
def make_cohort():
    """Build a synthetic cohort: ``make_cohort(n_slides=6)`` gives
    ``(slides, labels)``, 256-pixel ``Slide``s named ``slide-<i>`` with their
    labels, "negative" or "carcinoma"."""

    def make(n_slides=6):
        arrays, labels, _ = make_gastric_slides(
            n_slides, size=256, classes=["negative", "carcinoma"], random_state=0
        )
        return [Slide(a, name=f"slide-{i}") for i, a in enumerate(arrays)], labels

    return make


@pytest.fixture(scope="session")
def cohort(make_cohort):
    """Six synthetic slides and their labels (see ``make_cohort``); read-only."""
    return make_cohort()


@pytest.fixture(scope="session")
def patch_dataset():
    """``(patches, masks, labels)``: 32 labelled 32-pixel patches, the tiny
    segmenter's training set."""
    return make_patch_dataset(32, tile_size=32, random_state=0)


@pytest.fixture(scope="session")
def make_tiny_segmenter(patch_dataset):
    """Train a new tiny segmenter on ``patch_dataset``: ``make_tiny_segmenter(
    **params)`` overrides ``instance_generator.TINY_SEGMENTER``."""

    def make(**params):
        return PatchSegmenter(**{**TINY_SEGMENTER, **params}).fit(*patch_dataset)

    return make


@pytest.fixture(scope="session")
def trained_tiny_segmenter(make_tiny_segmenter):
    """The one training of the tiny segmenter in a test session."""
    return make_tiny_segmenter()


@pytest.fixture(scope="module")
def tiny_segmenter(trained_tiny_segmenter):
    """The tiny trained segmenter, a copy per module: a module may change its
    parameters without changing another module's."""
    return copy.deepcopy(trained_tiny_segmenter)


@pytest.fixture(autouse=True)
def _keep_torch_threads(monkeypatch):
    """The CLI's ``main`` sets torch's thread count and the policy's
    environment variable; both come back for the other tests."""
    import torch

    from sklearn_gastric.utils._cpu import THREADS_VARIABLE

    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    threads = torch.get_num_threads()
    yield
    os.environ.pop(THREADS_VARIABLE, None)
    torch.set_num_threads(threads)
