"""One read interface over OpenSlide files and in-memory RGB arrays."""

import math
import os
import threading
from pathlib import Path

import numpy as np

from ..utils._input_files import not_a_regular_file, read_error_message
from . import _openslide
from ._array import array_pyramid, read_array_region
from ._errors import SlideError, UnreadableTileWarning
from ._pixels import resize_area, rgba_to_rgb_on_white
from ._resolution import (
    MAX_MPP,
    MAX_MPP_ANISOTROPY,
    MIN_MPP,
    check_mpp,
    file_resolution,
)
from ._view import read_view

__all__ = [
    "MAX_MPP",
    "MAX_MPP_ANISOTROPY",
    "MIN_MPP",
    "Slide",
    "SlideError",
    "UnreadableTileWarning",
]


class Slide:
    """A whole-slide image, read lazily from a file or from an RGB array.

    The same interface covers every file OpenSlide reads (svs, ndpi, mrxs,
    generic tiled TIFF, ...), plain images (PNG, JPEG) and ``uint8`` arrays of
    shape ``(H, W, 3)``. A slide never holds a full-resolution level in
    memory unless it was built from one.

    Parameters
    ----------
    source : str, os.PathLike or ndarray of shape (H, W, 3), dtype uint8
        The slide file or its pixels.
    name : str, default=None
        A name used in messages and reports; the file name (or
        ``"array(HxW)"``) when omitted.
    mpp : float or (float, float), default=None
        Microns per pixel at level 0 (x, y), overriding what the file says:
        from :data:`MIN_MPP` to :data:`MAX_MPP` (0.05 to 10), x and y within
        :data:`MAX_MPP_ANISOTROPY` (10%) of each other.
    transform : callable, default=None
        A picklable pixel transform ``f(rgb) -> rgb`` applied to every read
        (stain normalisation). Its parameters are part of the slide's hash.

    Attributes
    ----------
    path : pathlib.Path or None
        The file, or None for an array slide.
    dimensions : (int, int)
        ``(width, height)`` at level 0.
    level_count : int
        Number of pyramid levels (virtual levels for arrays).
    level_dimensions : tuple of (int, int)
        ``(width, height)`` of each level.
    level_downsamples : tuple of float
        Downsample factor of each level relative to level 0.
    mpp : (float, float) or None
        Microns per pixel at level 0 (x, y), when known. A resolution the
        file states outside 0.05-10 µm/px, or with x and y more than 10%
        apart, counts as unknown, with a ``UserWarning`` naming the slide and
        the values (see Notes).
    vendor : str or None
        The format OpenSlide detected (``"aperio"``, ``"generic-tiff"``...),
        ``"image"`` for plain images and None for arrays.

    Notes
    -----
    Pickling stores the path (or the array), the file's size and
    modification time, and the transform, never the open OpenSlide handle:
    the handle is reopened on first read. ``joblib.hash`` of a file slide is
    therefore cheap and changes when the file or the transform changes.

    The resolution comes from OpenSlide's ``openslide.mpp-x`` and
    ``openslide.mpp-y``, which it derives from the vendor's metadata (e.g.
    Aperio's ``MPP``) or from a TIFF's ``XResolution``, ``YResolution`` and
    ``ResolutionUnit``. Files state nonsense there (0, negative, infinite,
    or a value in the wrong unit): a value that is not a resolution a slide
    can have (:data:`MIN_MPP`, :data:`MAX_MPP`), or x and y more than
    :data:`MAX_MPP_ANISOTROPY` apart, is treated as missing, with a warning,
    once per opening of the file. Everything downstream (``Tiler(mpp=...)``,
    the tissue filter, scale bars, ``sklearn-gastric info``) then sees
    ``mpp=None``. Within 10%, x and y are kept as stated; what needs one
    resolution uses their mean.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import Slide
    >>> slide = Slide(np.full((600, 800, 3), 255, dtype=np.uint8), name="blank")
    >>> slide.dimensions
    (800, 600)
    >>> slide.read_region((790, 0), 0, (20, 10)).shape
    (10, 20, 3)
    """

    def __init__(self, source, *, name=None, mpp=None, transform=None):
        self._lock = threading.Lock()
        self._handle = None
        self.transform = transform
        if isinstance(source, (str, os.PathLike)):
            # The file's resolution is only checked (and warned of) when it
            # is used, not overridden.
            self._init_from_path(Path(source), name, check_mpp=mpp is None)
        elif isinstance(source, np.ndarray):
            self._init_from_array(source, name)
        else:
            raise TypeError(
                f"A slide must be a path, an RGB uint8 array or a Slide; got "
                f"{type(source).__name__}."
            )
        self._mpp_override = check_mpp(mpp, self.name)

    # -- construction -------------------------------------------------------

    def _init_from_path(self, path, name, check_mpp=True):
        self.path = path.absolute()
        self._array = None
        self.name = name if name is not None else path.name
        stat = self._stat_file()
        self._signature = (stat.st_size, stat.st_mtime_ns)
        if stat.st_size == 0:
            raise SlideError(f"Slide {self.name!r}: the file {str(path)!r} is empty.")
        handle = self._open_handle()
        self._read_geometry(handle, check_mpp)

    def _stat_file(self):
        """``os.stat`` of the slide's file, refusing anything that is not a
        regular file before it is opened (a FIFO would block the open)."""
        path = self.path
        try:
            kind = not_a_regular_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Slide {self.name!r}: no such file {str(path)!r}."
            ) from None
        except OSError as exc:
            message = read_error_message(exc, "file", path, "slide file")
            raise SlideError(f"Slide {self.name!r}: {message}") from exc
        if kind is not None:
            raise SlideError(
                f"Slide {self.name!r}: {str(path)!r} is {kind}, not a slide file."
            )
        return path.stat()

    def _init_from_array(self, array, name):
        self.path = None
        self._signature = None
        if name is None:
            name = f"array({'x'.join(str(n) for n in array.shape[:2])})"
        self.name = name
        if array.ndim != 3 or array.shape[2] != 3:
            raise SlideError(
                f"Slide {self.name!r}: an array slide must have shape (H, W, 3) "
                f"(RGB); got shape {array.shape}."
            )
        if array.dtype != np.uint8:
            raise SlideError(
                f"Slide {self.name!r}: an array slide must be uint8 RGB; got "
                f"dtype {array.dtype}."
            )
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise SlideError(f"Slide {self.name!r}: the array has no pixels.")
        self._array = array
        self.vendor = None
        self._file_mpp = None
        height, width = array.shape[:2]
        self.level_dimensions, self.level_downsamples = array_pyramid(width, height)

    def _open_handle(self):
        return _openslide.open_handle(self.path, self.name)

    def _read_geometry(self, handle, check_mpp):
        geometry = _openslide.read_geometry(handle)
        self.vendor, self.level_dimensions, self.level_downsamples = geometry[:3]
        self._file_mpp = file_resolution(geometry[3], self.name) if check_mpp else None
        self._handle = handle

    def _get_handle(self):
        if self._handle is None:
            with self._lock:
                if self._handle is None:
                    self._handle = self._reopen_handle()
        return self._handle

    def _reopen_handle(self):
        """Open the file again (after unpickling, in a joblib or dask worker,
        or after a failed read), checking it is still the file first opened."""
        path = self.path
        try:
            self._stat_file()
        except FileNotFoundError:
            import socket

            raise FileNotFoundError(
                f"Slide {self.name!r}: no such file {str(path)!r} on host "
                f"{socket.gethostname()!r} (when slides run on other processes "
                f"or machines, each must see the file at the same path)."
            ) from None
        size = path.stat().st_size
        if size != self._signature[0]:
            raise SlideError(
                f"Slide {self.name!r}: the file {str(path)!r} changed since the "
                f"slide was opened (now {size} bytes, then {self._signature[0]})."
            )
        return self._open_handle()

    # -- geometry -----------------------------------------------------------

    @property
    def dimensions(self):
        return self.level_dimensions[0]

    @property
    def level_count(self):
        return len(self.level_dimensions)

    @property
    def mpp(self):
        return self._mpp_override if self._mpp_override is not None else self._file_mpp

    def get_best_level_for_downsample(self, downsample):
        """The highest-resolution level at least as coarse as ``downsample``
        allows, i.e. the largest level whose downsample is <= ``downsample``.

        Parameters
        ----------
        downsample : float
            The wanted downsample factor relative to level 0.

        Returns
        -------
        level : int
        """
        candidates = [
            i for i, d in enumerate(self.level_downsamples) if d <= downsample + 1e-9
        ]
        return candidates[-1] if candidates else 0

    # -- pixels -------------------------------------------------------------

    def read_region(self, location, level, size):
        """Read a region as RGB ``uint8`` of shape ``(h, w, 3)``.

        Parameters
        ----------
        location : (int, int)
            ``(x, y)`` of the top-left corner in level-0 pixels.
        level : int
            The pyramid level to read from.
        size : (int, int)
            ``(w, h)`` of the region in pixels of ``level``.

        Returns
        -------
        region : ndarray of shape (h, w, 3), dtype uint8
            The pixels; the parts past the slide's edge are white, as
            OpenSlide returns them. The slide's transform, if any, is applied.
        """
        x, y = (int(v) for v in location)
        w, h = (int(v) for v in size)
        if not 0 <= level < self.level_count:
            raise SlideError(
                f"Slide {self.name!r}: level {level} does not exist "
                f"(the slide has {self.level_count} level(s))."
            )
        if w <= 0 or h <= 0:
            raise SlideError(
                f"Slide {self.name!r}: region size must be positive; got {(w, h)}."
            )
        if self._array is not None:
            region = read_array_region(
                self._array, (x, y), self.level_downsamples[level], (w, h)
            )
        else:
            region = self._read_file_region(x, y, level, w, h)
        if self.transform is not None:
            region = self.transform(region)
        return region

    def _read_file_region(self, x, y, level, w, h):
        import openslide

        # PIL, under openslide.ImageSlide, raises OSError for a truncated or
        # corrupt PNG / JPEG.
        read_errors = (openslide.OpenSlideError, OSError)
        handle = self._get_handle()
        try:
            rgba = handle.read_region((x, y), level, (w, h))
        except read_errors:
            # After a failed read OpenSlide fails every later call on that
            # handle, and a thread sharing it may have failed for that reason
            # only: drop the shared handle (the next read opens a new one) and
            # retry on a private fresh handle, which fails only if this region
            # really cannot be read.
            self._discard_handle(handle)
            fresh = self._reopen_handle()
            try:
                rgba = fresh.read_region((x, y), level, (w, h))
            except read_errors as exc:
                raise SlideError(
                    f"Slide {self.name!r}: reading the region at ({x}, {y}), level "
                    f"{level}, size {(w, h)} failed: {exc}"
                ) from exc
        return rgba_to_rgb_on_white(np.asarray(rgba))

    def _discard_handle(self, handle):
        """Forget ``handle`` if it is still the shared one; threads still
        using it keep it alive, and it closes when the last one drops it."""
        with self._lock:
            if self._handle is handle:
                self._handle = None

    def read_view(
        self, downsample, *, reduce="mean", use_thumbnail=True, on_error="raise"
    ):
        """A view of the whole slide at about ``downsample``, read chunk by chunk.

        The coarsest pyramid level whose downsample does not exceed
        ``downsample`` is read in chunks of at most 2048x2048 pixels, and each
        chunk is reduced by the integer factor that brings it closest to
        ``downsample`` from above, so memory stays bounded by the size of the
        view whatever the size of the slide. When the file stores its own
        downsampled copy of the whole image (the "thumbnail" of Aperio files)
        and that copy is coarser than the level that would be read but no
        coarser than ``downsample``, it is used instead, which spares reading
        full-resolution pixels of single-level files.

        Parameters
        ----------
        downsample : float
            The wanted level-0 pixels per view pixel (at least 1).
        reduce : {"mean", "sample"}, default="mean"
            How a block of the level read becomes one view pixel: its mean
            (area resizing), or its top-left pixel (no mixing of neighbouring
            colours, which is what stain estimation wants).
        use_thumbnail : bool, default=True
            Allow the file's stored thumbnail.
        on_error : {"raise", "skip"}, default="raise"
            A tile of the file that cannot be read (a corrupt tile of a
            single-level file read at full resolution): ``"raise"`` a
            :class:`SlideError` naming the slide and the tile, or ``"skip"``
            it: its part of the view is white (glass) and its message is in
            the view's ``failures``; nothing is warned, so that a step running
            in a worker process can warn in the caller's.

        Returns
        -------
        view : SlideView
            ``view.pixels`` (h, w, 3) uint8; ``view.downsample``, the view's
            exact level-0 pixels per view pixel: at least ``downsample`` when
            read from the pyramid, between half of it and itself when taken
            from a stored thumbnail; ``view.extent`` in level-0 pixels.

        Raises
        ------
        SlideError
            The level to read holds more than 2**31 pixels (a file without a
            pyramid level small enough: refused at once rather than read for
            hours), or a tile cannot be read and ``on_error="raise"``.

        See Also
        --------
        get_thumbnail : A view of an exact size.
        sklearn_gastric.io.low_resolution_view : The same for any slide-like
            object, as ``(pixels, downsample)``, warning of skipped tiles.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.io import Slide
        >>> slide = Slide(np.zeros((2000, 3000, 3), dtype=np.uint8))
        >>> slide.level_downsamples
        (1.0, 4.0)
        >>> view = slide.read_view(10)
        >>> view.pixels.shape, view.downsample, view.extent
        ((167, 250, 3), 12.0, (0.0, 3000.0, 2004.0, 0.0))
        """
        return read_view(
            self,
            downsample,
            reduce=reduce,
            use_thumbnail=use_thumbnail,
            on_error=on_error,
        )

    def get_thumbnail(self, max_size):
        """A downsampled RGB view that fits in ``max_size``.

        Parameters
        ----------
        max_size : int or (int, int)
            The largest ``(width, height)`` of the thumbnail.

        Returns
        -------
        thumbnail : ndarray of shape (h, w, 3), dtype uint8
            The whole slide, aspect ratio kept, read chunk by chunk from the
            coarsest level that is still at least as large as the thumbnail
            (:meth:`read_view`), then area-resized.

        Raises
        ------
        SlideError
            The level to read is too large to read in bounded time (no
            pyramid), or cannot be read.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.io import Slide
        >>> Slide(np.zeros((2000, 3000, 3), dtype=np.uint8)).get_thumbnail(256).shape
        (171, 256, 3)
        """
        if np.isscalar(max_size):
            max_size = (int(max_size), int(max_size))
        max_w, max_h = (int(v) for v in max_size)
        width, height = self.dimensions
        scale = max(width / max_w, height / max_h, 1.0)
        out_w, out_h = max(1, round(width / scale)), max(1, round(height / scale))
        # A view at least as large as the thumbnail, then area-resized down.
        level_ds = self.level_downsamples[self.get_best_level_for_downsample(scale)]
        wanted = level_ds * max(1, math.floor(scale / level_ds + 1e-9))
        view = self.read_view(wanted, use_thumbnail=False)
        # Its last row and column may hold less than one view pixel of slide,
        # padded with white: dropped, or the thumbnail's edge would fade.
        rows, cols = int(height / view.downsample), int(width / view.downsample)
        return resize_area(view.pixels[: max(1, rows), : max(1, cols)], out_h, out_w)

    def tile_size(self, level):
        """The ``(width, height)`` of the file's own tiles at ``level``.

        Parameters
        ----------
        level : int

        Returns
        -------
        size : (int, int) or None
            What OpenSlide reports; None for arrays, plain images and
            files that do not say.
        """
        if self._array is not None or self.vendor == "image":
            return None
        return _openslide.tile_size(self._get_handle(), level)

    @property
    def stored_thumbnail_dimensions(self):
        """``(width, height)`` of the thumbnail an Aperio file stores, or None."""
        if self.vendor != "aperio":
            return None
        return _openslide.stored_thumbnail_dimensions(self._get_handle())

    def read_stored_thumbnail(self):
        """The thumbnail an Aperio file stores, as RGB uint8, or None.

        Returns
        -------
        thumbnail : ndarray of shape (h, w, 3), dtype uint8, or None
            With the slide's transform applied; None when the file has no
            readable stored thumbnail.
        """
        if self.stored_thumbnail_dimensions is None:
            return None
        thumbnail = _openslide.read_stored_thumbnail(self._get_handle())
        if thumbnail is not None and self.transform is not None:
            thumbnail = self.transform(thumbnail)
        return thumbnail

    # -- transforms, pickling, hashing --------------------------------------

    def with_transform(self, transform):
        """A new slide over the same source whose reads pass through ``transform``.

        Parameters
        ----------
        transform : callable or None
            ``f(rgb uint8 (h, w, 3)) -> rgb uint8 (h, w, 3)``; picklable.
            It replaces any transform this slide already has.

        Returns
        -------
        slide : Slide
        """
        new = self._copy()
        new.transform = transform
        return new

    def with_mpp(self, mpp):
        """A new slide over the same source, at the resolution ``mpp``.

        What a user states for a file that does not say its resolution (or
        says one no slide can have), or corrects for one that says it wrong.

        Parameters
        ----------
        mpp : float or (float, float)
            Microns per level-0 pixel (x, y), from :data:`MIN_MPP` to
            :data:`MAX_MPP`.

        Returns
        -------
        slide : Slide

        Raises
        ------
        SlideError
            ``mpp`` is no resolution a slide can have.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.io import Slide
        >>> slide = Slide(np.zeros((8, 8, 3), dtype=np.uint8))
        >>> slide.mpp, slide.with_mpp(0.25).mpp
        (None, (0.25, 0.25))
        """
        checked = check_mpp(mpp, self.name)
        new = self._copy()
        new._mpp_override = checked
        return new

    def _copy(self):
        """A new slide over the same source, without an open handle."""
        new = object.__new__(Slide)
        new.__setstate__(self.__getstate__())
        return new

    def __getstate__(self):
        state = {
            k: v for k, v in self.__dict__.items() if k not in ("_lock", "_handle")
        }
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._handle = None

    def close(self):
        """Close the OpenSlide handle; the next read reopens it."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        width, height = self.dimensions
        source = str(self.path) if self.path is not None else "array"
        extra = f", transform={self.transform!r}" if self.transform is not None else ""
        return f"Slide({self.name!r}, {width}x{height}, source={source!r}{extra})"
