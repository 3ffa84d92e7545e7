"""Shared fixtures: the real slides, fetched the way a user's clone gets them."""

import os

import matplotlib
import pytest
import torch

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
