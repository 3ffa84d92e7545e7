"""Shared fixtures: the real slides, fetched the way a user's clone gets them."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")


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
