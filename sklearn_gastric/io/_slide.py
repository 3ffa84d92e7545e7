"""One read interface over OpenSlide files and in-memory RGB arrays."""

import math
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["Slide", "SlideError", "UnreadableTileWarning", "open_slide"]

# Extensions that OpenSlide does not read but PIL does: opened through
# ``openslide.ImageSlide`` so that a PNG target or a JPEG crop works as a slide.
_PLAIN_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}

# Virtual pyramid of an array slide: each level is this much smaller.
_ARRAY_LEVEL_FACTOR = 4
_ARRAY_SMALLEST_LEVEL_SIDE = 512


class SlideError(ValueError):
    """A slide cannot be opened or read; the message names the slide."""


class UnreadableTileWarning(UserWarning):
    """A tile that cannot be read was skipped (``on_error="skip"``)."""


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
        Microns per pixel at level 0, overriding what the file says.
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
        Microns per pixel at level 0 (x, y), when known.
    vendor : str or None
        The format OpenSlide detected (``"aperio"``, ``"generic-tiff"``...),
        ``"image"`` for plain images and None for arrays.

    Notes
    -----
    Pickling stores the path (or the array), the file's size and
    modification time, and the transform, never the open OpenSlide handle:
    the handle is reopened on first read. ``joblib.hash`` of a file slide is
    therefore cheap and changes when the file or the transform changes.

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
            self._init_from_path(Path(source), name)
        elif isinstance(source, np.ndarray):
            self._init_from_array(source, name)
        else:
            raise TypeError(
                f"A slide must be a path, an RGB uint8 array or a Slide; got "
                f"{type(source).__name__}."
            )
        self._mpp_override = _check_mpp(mpp, self.name)

    # -- construction -------------------------------------------------------

    def _init_from_path(self, path, name):
        self.path = path.absolute()
        self._array = None
        self.name = name if name is not None else path.name
        if not path.exists():
            raise FileNotFoundError(f"Slide {self.name!r}: no such file {str(path)!r}.")
        if path.is_dir():
            raise SlideError(f"Slide {self.name!r}: {str(path)!r} is a directory.")
        stat = path.stat()
        self._signature = (stat.st_size, stat.st_mtime_ns)
        if stat.st_size == 0:
            raise SlideError(f"Slide {self.name!r}: the file {str(path)!r} is empty.")
        handle = self._open_handle()
        self._read_geometry(handle)

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
        downsamples = [1]
        while (
            max(width, height) / (downsamples[-1] * _ARRAY_LEVEL_FACTOR)
            >= _ARRAY_SMALLEST_LEVEL_SIDE
        ):
            downsamples.append(downsamples[-1] * _ARRAY_LEVEL_FACTOR)
        self.level_downsamples = tuple(float(d) for d in downsamples)
        self.level_dimensions = tuple(
            (max(1, width // d), max(1, height // d)) for d in downsamples
        )

    def _open_handle(self):
        import openslide

        path = self.path
        try:
            return openslide.OpenSlide(str(path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            if path.suffix.lower() in _PLAIN_IMAGE_SUFFIXES:
                try:
                    return openslide.ImageSlide(str(path))
                except Exception as image_exc:  # PIL raises several types
                    raise SlideError(
                        f"Slide {self.name!r}: cannot read {str(path)!r} as an "
                        f"image ({image_exc})."
                    ) from image_exc
            raise SlideError(
                f"Slide {self.name!r}: {str(path)!r} is not in a format OpenSlide "
                f"reads, or is corrupt or truncated ({exc or 'unsupported file'})."
            ) from exc
        except openslide.OpenSlideError as exc:
            raise SlideError(
                f"Slide {self.name!r}: OpenSlide failed to open {str(path)!r}: {exc}"
            ) from exc

    def _read_geometry(self, handle):
        import openslide

        if isinstance(handle, openslide.ImageSlide):
            self.vendor = "image"
        else:
            self.vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR)
        self.level_dimensions = tuple(
            tuple(int(v) for v in d) for d in handle.level_dimensions
        )
        self.level_downsamples = tuple(float(d) for d in handle.level_downsamples)
        try:
            self._file_mpp = (
                float(handle.properties[openslide.PROPERTY_NAME_MPP_X]),
                float(handle.properties[openslide.PROPERTY_NAME_MPP_Y]),
            )
        except (KeyError, ValueError):
            self._file_mpp = None
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
        if not path.is_file():
            import socket

            raise FileNotFoundError(
                f"Slide {self.name!r}: no such file {str(path)!r} on host "
                f"{socket.gethostname()!r} (when slides run on other processes "
                f"or machines, each must see the file at the same path)."
            )
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
            region = self._read_array_region(x, y, level, w, h)
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
        return _rgba_to_rgb_on_white(np.asarray(rgba))

    def _discard_handle(self, handle):
        """Forget ``handle`` if it is still the shared one; threads still
        using it keep it alive, and it closes when the last one drops it."""
        with self._lock:
            if self._handle is handle:
                self._handle = None

    def _read_array_region(self, x, y, level, w, h):
        factor = int(round(self.level_downsamples[level]))
        height, width = self._array.shape[:2]
        region = np.full((h * factor, w * factor, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w * factor, width), min(y + h * factor, height)
        if x1 > x0 and y1 > y0:
            region[y0 - y : y1 - y, x0 - x : x1 - x] = self._array[y0:y1, x0:x1]
        if factor > 1:
            region = _block_mean(region, factor)
        return region

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
            (:func:`~sklearn_gastric.io.low_resolution_view`), then
            area-resized.

        Raises
        ------
        SlideError
            The level to read is too large to read in bounded time (no
            pyramid), or cannot be read.
        """
        from ._view import low_resolution_view

        if np.isscalar(max_size):
            max_size = (int(max_size), int(max_size))
        max_w, max_h = (int(v) for v in max_size)
        width, height = self.dimensions
        scale = max(width / max_w, height / max_h, 1.0)
        out_w, out_h = max(1, round(width / scale)), max(1, round(height / scale))
        # A view at least as large as the thumbnail, then area-resized down.
        level_ds = self.level_downsamples[self.get_best_level_for_downsample(scale)]
        wanted = level_ds * max(1, math.floor(scale / level_ds + 1e-9))
        view, downsample = low_resolution_view(self, wanted, use_thumbnail=False)
        # Its last row and column may hold less than one view pixel of slide,
        # padded with white: dropped, or the thumbnail's edge would fade.
        rows, cols = int(height / downsample), int(width / downsample)
        view = view[: max(1, rows), : max(1, cols)]
        if view.shape[:2] != (out_h, out_w):
            view = _resize_area(view, out_h, out_w)
        return view

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
        properties = self._get_handle().properties
        try:
            return (
                int(properties[f"openslide.level[{level}].tile-width"]),
                int(properties[f"openslide.level[{level}].tile-height"]),
            )
        except (KeyError, ValueError):
            return None

    @property
    def stored_thumbnail_dimensions(self):
        """``(width, height)`` of the thumbnail an Aperio file stores, or None."""
        if self.vendor != "aperio":
            return None
        properties = self._get_handle().properties
        try:
            return (
                int(properties["openslide.associated.thumbnail.width"]),
                int(properties["openslide.associated.thumbnail.height"]),
            )
        except (KeyError, ValueError):
            return None

    def read_stored_thumbnail(self):
        """The thumbnail an Aperio file stores, as RGB uint8, or None.

        Returns
        -------
        thumbnail : ndarray of shape (h, w, 3), dtype uint8, or None
            With the slide's transform applied; None when the file has no
            readable stored thumbnail.
        """
        import openslide

        if self.stored_thumbnail_dimensions is None:
            return None
        try:
            rgba = np.asarray(self._get_handle().associated_images["thumbnail"])
        except (KeyError, openslide.OpenSlideError):
            return None
        thumbnail = _rgba_to_rgb_on_white(rgba)
        if self.transform is not None:
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
        new = object.__new__(Slide)
        new.__setstate__(self.__getstate__())
        new.transform = transform
        if self._array is None:
            new._handle = None
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


def open_slide(obj, *, name=None):
    """Open anything the library accepts as a slide.

    Parameters
    ----------
    obj : str, os.PathLike, ndarray of shape (H, W, 3) uint8, or Slide
        A slide file, an RGB array or an existing slide (returned as is).
    name : str, default=None
        The slide's name when ``obj`` is a path or an array.

    Returns
    -------
    slide : Slide

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    SlideError
        The file is not a slide OpenSlide (or PIL, for plain images) reads, or
        the array is not RGB uint8.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import open_slide
    >>> open_slide(np.zeros((4, 4, 3), dtype=np.uint8)).dimensions
    (4, 4)
    """
    if isinstance(obj, Slide):
        return obj
    return Slide(obj, name=name)


def _check_mpp(mpp, name):
    if mpp is None:
        return None
    values = np.broadcast_to(np.asarray(mpp, dtype=float), (2,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise SlideError(f"Slide {name!r}: mpp must be positive; got {mpp!r}.")
    return (float(values[0]), float(values[1]))


def _rgba_to_rgb_on_white(rgba):
    """Composite OpenSlide's (un-premultiplied) RGBA onto white."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if np.all(alpha == 255):
        # One copy per channel: several times faster than numpy's strided
        # copy of the (h, w, 3) view of an (h, w, 4) array.
        out = np.empty(rgb.shape, dtype=np.uint8)
        for channel in range(3):
            out[..., channel] = rgb[..., channel]
        return out
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _block_mean(image, factor):
    """Mean of each ``factor x factor`` block (rounded), in integer arithmetic.

    Several times faster than a float mean over a reshaped array; the
    trailing rows and columns that do not fill a block are dropped.
    """
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if factor <= 4:
        total = np.zeros((h, w, 3), dtype=np.uint32)
        for dy in range(factor):
            rows = image[dy : h * factor : factor]
            for dx in range(factor):
                total += rows[:, dx : w * factor : factor]
    else:
        rows = image[: h * factor, : w * factor].reshape(h, factor, w * factor * 3)
        rows = rows.sum(axis=1, dtype=np.uint32)
        total = rows.reshape(h, w, factor, 3).sum(axis=2, dtype=np.uint32)
    area = factor * factor
    return ((total + area // 2) // area).astype(np.uint8)


def _resize_area(image, out_h, out_w):
    """Area-average (box filter) resize of an RGB uint8 image, for thumbnails."""
    from PIL import Image

    resized = Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BOX)
    return np.asarray(resized)
