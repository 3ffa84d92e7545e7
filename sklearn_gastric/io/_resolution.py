"""The resolutions a slide can have, and the check of what a file or a
user states."""

import math
import warnings

import numpy as np

from ._errors import SlideError

__all__ = ["MAX_MPP", "MAX_MPP_ANISOTROPY", "MIN_MPP", "check_mpp", "file_resolution"]

#: The resolutions, in µm per level-0 pixel, a slide can have: scanners work
#: from about 0.1 (80x) to 1 (10x); 0.05 is finer than any light microscope
#: resolves, and 10 is a 1x overview. A file stating a resolution outside
#: them (0, 1e-300, a negative number, infinity, a million) states none.
MIN_MPP = 0.05
MAX_MPP = 10.0
#: How far apart the x and y resolutions may be, relative to the smaller.
#: Scanners' pixels are square to within a few percent; beyond 10% a tile of
#: ``tile_size`` pixels at one resolution would be a rectangle of tissue.
MAX_MPP_ANISOTROPY = 0.1


def _resolution_problem(mpp_x, mpp_y):
    """Why ``(mpp_x, mpp_y)`` µm per pixel is not a slide's resolution, or None."""
    if not all(math.isfinite(v) and MIN_MPP <= v <= MAX_MPP for v in (mpp_x, mpp_y)):
        return f"not one from {MIN_MPP:g} to {MAX_MPP:g} µm per pixel"
    ratio = max(mpp_x, mpp_y) / min(mpp_x, mpp_y)
    if ratio > 1 + MAX_MPP_ANISOTROPY:
        return (
            f"{ratio:.3g} times as fine one way as the other (x and y may "
            f"differ by {MAX_MPP_ANISOTROPY:.0%} at most)"
        )
    return None


def file_resolution(mpp_text, name):
    """The resolution a file states, as ``(x, y)`` floats; None, with a
    warning naming the slide and the values, when it is no resolution."""
    if mpp_text is None:
        return None
    try:
        mpp = tuple(float(v) for v in mpp_text)
    except (TypeError, ValueError):  # half of the pair, or not a number
        problem, mpp = "not a number", None
    else:
        problem = _resolution_problem(*mpp)
    if problem is None:
        return mpp
    x, y = mpp_text
    warnings.warn(
        f"Slide {name!r}: the resolution its file states (openslide.mpp-x = "
        f"{x!r}, openslide.mpp-y = {y!r}) is {problem}; the slide is treated as "
        "having no resolution (give it with Slide(path, mpp=...) if you know "
        "it).",
        UserWarning,
        stacklevel=5,
    )
    return None


def check_mpp(mpp, name):
    """The user's ``mpp=`` as ``(x, y)``, or None; an error when it is no
    resolution (a file's is dropped with a warning, an argument refused)."""
    if mpp is None:
        return None
    try:
        values = np.broadcast_to(np.asarray(mpp, dtype=float), (2,))
    except (TypeError, ValueError):
        values = (math.nan, math.nan)
    if _resolution_problem(*values) is not None:
        raise SlideError(
            f"Slide {name!r}: mpp must be positive, with x and y from {MIN_MPP:g} "
            f"to {MAX_MPP:g} µm per pixel and within {MAX_MPP_ANISOTROPY:.0%} of "
            f"each other; got {mpp!r}."
        )
    return (float(values[0]), float(values[1]))
