"""The functions that take anything the library accepts as a slide: a path,
an RGB array or a :class:`Slide`."""

import warnings
from numbers import Real

from ..utils._sklearn_compat import Interval, StrOptions, validate_params
from ._errors import UnreadableTileWarning
from ._slide import Slide

__all__ = ["low_resolution_view", "open_slide"]


# ``obj`` is checked by Slide, whose TypeError says what a slide may be.
@validate_params(
    {"obj": "no_validation", "name": [str, None], "mpp": "no_validation"},
    prefer_skip_nested_validation=True,
)
def open_slide(obj, *, name=None, mpp=None):
    """Open anything the library accepts as a slide.

    Parameters
    ----------
    obj : str, os.PathLike, ndarray of shape (H, W, 3) uint8, or Slide
        A slide file, an RGB array or an existing slide (returned as is).
    name : str, default=None
        The slide's name when ``obj`` is a path or an array.
    mpp : float or (float, float), default=None
        The slide's resolution in microns per level-0 pixel, overriding
        what its file says (or stating what it does not say); a Slide given
        with ``mpp`` is returned as a copy at that resolution. None: the
        file's own (see :class:`Slide`).

    Returns
    -------
    slide : Slide

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    SlideError
        The file is not a slide OpenSlide (or PIL, for plain images) reads, or
        the array is not RGB uint8, or ``mpp`` is no resolution a slide can
        have (0.05 to 10 µm/px).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import open_slide
    >>> open_slide(np.zeros((4, 4, 3), dtype=np.uint8)).dimensions
    (4, 4)
    """
    if isinstance(obj, Slide):
        return obj if mpp is None else obj.with_mpp(mpp)
    return Slide(obj, name=name, mpp=mpp)


@validate_params(
    {
        "slide": "no_validation",
        "downsample": [Interval(Real, 0, None, closed="neither")],
        "reduce": [StrOptions({"mean", "sample"})],
        "use_thumbnail": ["boolean"],
        "on_error": [StrOptions({"raise", "skip"})],
    },
    prefer_skip_nested_validation=True,
)
def low_resolution_view(
    slide, downsample, *, reduce="mean", use_thumbnail=True, on_error="raise"
):
    """A downsampled view of a whole slide, read chunk by chunk.

    :meth:`Slide.read_view` for anything :func:`open_slide` accepts,
    returning the pixels and their downsample; the file tiles skipped with
    ``on_error="skip"`` are warned of.

    Parameters
    ----------
    slide : Slide, path or ndarray
        The slide (its pixel transform, if any, is applied).
    downsample, reduce, use_thumbnail
        As in :meth:`Slide.read_view`: the wanted level-0 pixels per view
        pixel, ``"mean"`` or ``"sample"``, whether the file's stored
        thumbnail may serve.
    on_error : {"raise", "skip"}, default="raise"
        As in :meth:`Slide.read_view`, but a skipped tile of the file is
        warned of with an :class:`UnreadableTileWarning` naming the slide and
        the tile.

    Returns
    -------
    view : ndarray of shape (h, w, 3), dtype uint8
        Pixel ``(i, j)`` averages level-0 pixels
        ``[j * d, (j + 1) * d) x [i * d, (i + 1) * d)``; the last row and
        column may extend past the slide's edge (read as white).
    actual_downsample : float
        ``d``, the view's downsample relative to level 0: at least
        ``downsample`` when read from the pyramid, between half of it and
        itself when taken from a stored thumbnail.

    Raises
    ------
    SlideError
        As :meth:`Slide.read_view`: the view would read too many pixels, or
        a tile cannot be read and ``on_error="raise"``.

    See Also
    --------
    Slide.read_view : The view with its extent and skipped tiles.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import low_resolution_view
    >>> view, d = low_resolution_view(np.zeros((100, 300, 3), np.uint8), 10)
    >>> view.shape, d
    ((10, 30, 3), 10.0)
    """
    view = open_slide(slide).read_view(
        downsample, reduce=reduce, use_thumbnail=use_thumbnail, on_error=on_error
    )
    for message in view.failures:
        warnings.warn(message, UnreadableTileWarning, stacklevel=2)
    return view.pixels, view.downsample
