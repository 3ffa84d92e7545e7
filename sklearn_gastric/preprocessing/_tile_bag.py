"""TileBag: the tiles of one slide, as coordinates plus optional per-tile columns."""

import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np

from ..io import SlideError, UnreadableTileWarning, open_slide
from ..io._pixels import resize_area
from ..utils._validation import check_profile

__all__ = ["TileBag", "UnreadableTileWarning"]

_COLUMNS = ("tissue_fraction", "features", "scores", "patch_proba", "prob_maps")
# The shape of each column and its number of dimensions, for TileBag.require.
_SHAPES = {
    "tissue_fraction": ("(n_tiles,)", 1),
    "features": ("(n_tiles, n_features)", 2),
    "scores": ("(n_tiles,)", 1),
    "patch_proba": ("(n_tiles, n_classes)", 2),
    "prob_maps": ("(n_tiles, height, width)", 3),
}


class TileBag:
    """The tiles of one slide: where they are, and what the steps learned of them.

    A bag holds no pixels: :meth:`read_tile` and :meth:`iter_batches` read them
    from the slide on demand.

    Parameters
    ----------
    slide : Slide, path or ndarray
        The slide the tiles come from (opened with
        :func:`~sklearn_gastric.io.open_slide`).
    coords : array-like of shape (n_tiles, 2)
        Level-0 ``(x, y)`` of each tile's top-left corner.
    tile_size : int
        Tile width and height in pixels, as :meth:`read_tile` returns them.
    level : int, default=0
        The pyramid level tiles are read from.
    read_size : int, default=None
        Side, in pixels of ``level``, of the square region read for each
        tile, which is then area-resized to ``tile_size``; None means
        ``tile_size`` (no resizing). A :class:`Tiler` with ``mpp`` sets it.
    tissue_fraction : ndarray of shape (n_tiles,), default=None
        Fraction of each tile covered by tissue.
    features : ndarray of shape (n_tiles, n_features), default=None
        One feature vector per tile (float32).
    scores : ndarray of shape (n_tiles,), default=None
        One lesion score per tile (float32).
    patch_proba : ndarray of shape (n_tiles, n_classes), default=None
        Patch class probabilities.
    prob_maps : ndarray of shape (n_tiles, h, w), default=None
        Per-pixel lesion probability of each tile at a reduced resolution.
    profile : ndarray of shape (n_profile,), default=None
        A summary of the features of every tissue tile of the slide, kept
        when tiles are dropped: :class:`~sklearn_gastric.graph.TopKSelector`
        sets it before keeping the top-K (see
        :func:`~sklearn_gastric.graph.tile_profile`), so that the slide graph
        still knows what the whole slide looks like.

    Attributes
    ----------
    name : str
        The slide's name.
    footprint : int
        Side of a tile in level-0 pixels (``read_size`` times the level's
        downsample, rounded).
    pixel_downsample : float
        Level-0 pixels per pixel of a tile as read (the level's downsample
        times ``read_size / tile_size``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> rgb = np.zeros((64, 96, 3), dtype=np.uint8)
    >>> bag = TileBag(rgb, coords=[[0, 0], [32, 0], [64, 32]], tile_size=32)
    >>> len(bag), bag.subset([2, 0]).coords.tolist()
    (3, [[64, 32], [0, 0]])
    >>> next(bag.iter_batches(batch_size=2)).shape
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        slide,
        coords,
        tile_size,
        *,
        level=0,
        read_size=None,
        tissue_fraction=None,
        features=None,
        scores=None,
        patch_proba=None,
        prob_maps=None,
        profile=None,
    ):
        self.slide = open_slide(slide)
        coords = np.asarray(coords, dtype=np.int64)
        if coords.size == 0:
            coords = coords.reshape(0, 2)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(
                f"Slide {self.slide.name!r}: coords must have shape (n_tiles, 2); "
                f"got {coords.shape}."
            )
        self.coords = coords
        self.tile_size = int(tile_size)
        self.level = int(level)
        self.read_size = self.tile_size if read_size is None else int(read_size)
        if self.read_size < 1:
            raise ValueError(
                f"Slide {self.slide.name!r}: read_size must be >= 1; got "
                f"{self.read_size}."
            )
        columns = dict(
            tissue_fraction=tissue_fraction,
            features=features,
            scores=scores,
            patch_proba=patch_proba,
            prob_maps=prob_maps,
        )
        for column, values in columns.items():
            setattr(self, column, self._check_column(column, values))
        self.profile = check_profile(profile, f"Slide {self.slide.name!r}")

    def _check_column(self, column, values):
        if values is None:
            return None
        values = np.asarray(values)
        if values.shape[:1] != (len(self.coords),):
            raise ValueError(
                f"Slide {self.slide.name!r}: column {column!r} has "
                f"{values.shape[0] if values.ndim else 0} rows for "
                f"{len(self.coords)} tiles."
            )
        if column in ("features", "scores", "tissue_fraction") or (
            column == "prob_maps" and values.dtype.kind == "f"
        ):
            values = values.astype(np.float32, copy=False)
        return values

    @property
    def name(self):
        return self.slide.name

    @property
    def footprint(self):
        return int(round(self.read_size * self.slide.level_downsamples[self.level]))

    @property
    def pixel_downsample(self):
        # A ratio of 1.0 leaves the level's downsample exactly as it was.
        scale = self.read_size / self.tile_size
        return self.slide.level_downsamples[self.level] * scale

    def __setstate__(self, state):
        # Bags pickled before read_size (or profile) existed read tiles
        # unresized (and have no profile).
        state.setdefault("read_size", state["tile_size"])
        state.setdefault("profile", None)
        self.__dict__.update(state)

    def __len__(self):
        return len(self.coords)

    def __repr__(self):
        present = [c for c in _COLUMNS if getattr(self, c) is not None]
        read = f", read_size={self.read_size}"
        if self.read_size == self.tile_size:
            read = ""
        return (
            f"TileBag({self.name!r}, n_tiles={len(self)}, tile_size={self.tile_size}, "
            f"level={self.level}{read}, columns={present})"
        )

    def replace(self, **changes):
        """A new bag with some fields replaced (the slide is shared, not copied).

        Parameters
        ----------
        **changes
            Any of ``slide``, ``coords``, ``tile_size``, ``level``,
            ``read_size``, ``profile`` and the per-tile columns.

        Returns
        -------
        bag : TileBag
        """
        fields = dict(
            slide=self.slide,
            coords=self.coords,
            tile_size=self.tile_size,
            level=self.level,
            read_size=self.read_size,
            profile=self.profile,
            **{c: getattr(self, c) for c in _COLUMNS},
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"TileBag has no field(s) {sorted(unknown)}.")
        fields.update(changes)
        return TileBag(**fields)

    def subset(self, indices):
        """The tiles at ``indices`` (an index array or boolean mask), in that order.

        Parameters
        ----------
        indices : array-like of int or bool

        Returns
        -------
        bag : TileBag
        """
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        indices = indices.astype(np.intp, copy=False)
        return self.replace(
            coords=self.coords[indices],
            **{
                c: getattr(self, c)[indices]
                for c in _COLUMNS
                if getattr(self, c) is not None
            },
        )

    def require(self, column, *, hint="run a PatchSegmenter first", allow_empty=False):
        """The column a step needs, or the error that names the slide.

        Parameters
        ----------
        column : {"tissue_fraction", "features", "scores", "patch_proba", \
"prob_maps"}
            The per-tile column.
        hint : str, default="run a PatchSegmenter first"
            What to do when the column is missing, for the message.
        allow_empty : bool, default=False
            Accept a bag without tiles; by default it is an error, as a step
            cannot work on a slide without any tissue tile.

        Returns
        -------
        values : ndarray of shape (n_tiles, ...)
            The column.

        Raises
        ------
        ValueError
            Naming the slide: the bag has no tile, the column is missing, has
            another number of dimensions than its shape, or holds NaN or
            infinite values.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.io import Slide
        >>> from sklearn_gastric.preprocessing import TileBag
        >>> slide = Slide(np.zeros((16, 32, 3), np.uint8), name="s1")
        >>> bag = TileBag(slide, [[0, 0], [16, 0]], 16, scores=[2.0, 3.0])
        >>> bag.require("scores")
        array([2., 3.], dtype=float32)
        >>> bag.require("features")
        Traceback (most recent call last):
        ...
        ValueError: Slide 's1': the tiles have no 'features'; run a PatchSegmenter \
first.
        """
        if column not in _SHAPES:
            raise ValueError(
                f"TileBag has no column {column!r}; use one of {_COLUMNS}."
            )
        if len(self) == 0 and not allow_empty:
            raise ValueError(f"Slide {self.name!r}: no tissue tile.")
        values = getattr(self, column)
        if values is None:
            raise ValueError(
                f"Slide {self.name!r}: the tiles have no {column!r}; {hint}."
            )
        shape, ndim = _SHAPES[column]
        if values.ndim != ndim:
            raise ValueError(
                f"Slide {self.name!r}: {column!r} must have shape {shape}; got "
                f"{values.shape}."
            )
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(
                f"Slide {self.name!r}: {column!r} contains NaN or infinite values."
            )
        return values

    def score_order(self):
        """Tile indices by decreasing score: the order of the top-K tiles and
        of the graph's nodes.

        Ties are broken by raster position of the level-0 coordinates (``y``,
        then ``x``), then by index, so the order of equal-score tiles does
        not depend on the order of the bag.

        Returns
        -------
        order : ndarray of shape (n_tiles,), dtype int

        Raises
        ------
        ValueError
            As :meth:`require` for ``"scores"``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.preprocessing import TileBag
        >>> coords = [[0, 0], [16, 0], [0, 16], [16, 16]]
        >>> bag = TileBag(np.zeros((32, 32, 3), np.uint8), coords, 16,
        ...               scores=[1.0, 3.0, 3.0, 2.0])
        >>> bag.score_order().tolist()
        [1, 2, 3, 0]
        """
        scores = self.require("scores").astype(np.float64)
        index = np.arange(len(self))
        return np.lexsort((index, self.coords[:, 0], self.coords[:, 1], -scores))

    def read_tile(self, index):
        """Pixels of one tile, RGB uint8 ``(tile_size, tile_size, 3)``.

        The ``read_size`` x ``read_size`` region of ``level`` at the tile's
        corner, area-resized (box filter) to ``tile_size`` when the two
        differ.

        Parameters
        ----------
        index : int

        Returns
        -------
        tile : ndarray of shape (tile_size, tile_size, 3), dtype uint8

        Raises
        ------
        SlideError
            The tile cannot be read (a corrupt tile in the file); the message
            names the slide, the tile's index and its level-0 coordinates.
        """
        x, y = (int(v) for v in self.coords[index])
        side = self.read_size
        try:
            region = self.slide.read_region((x, y), self.level, (side, side))
        except SlideError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise SlideError(
                f"Slide {self.name!r}: tile {int(index)} at level-0 (x, y) = "
                f"({x}, {y}) cannot be read: {cause}"
            ) from exc
        return resize_area(region, self.tile_size, self.tile_size)

    def iter_batches(
        self, batch_size=32, *, n_jobs=None, on_error="raise", return_indices=False
    ):
        """Read the tiles in order, ``batch_size`` at a time.

        :meth:`read_batches` that warns of the tiles it skips, for callers in
        the process that should see the warnings.

        Parameters
        ----------
        batch_size, n_jobs
            As in :meth:`read_batches` (32 tiles and one reader thread by
            default).
        on_error : {"raise", "skip"}, default="raise"
            As in :meth:`read_batches`, but a tile left out of its batch is
            warned of with an :class:`UnreadableTileWarning` naming the slide
            and the tile, and a batch left empty is not yielded.
        return_indices : bool, default=False
            Yield ``(indices, batch)``, where ``indices`` are the positions
            in the bag of the tiles in ``batch``: with ``on_error="skip"``,
            the way to know which tiles were read.

        Yields
        ------
        batch : ndarray of shape (b, tile_size, tile_size, 3), dtype uint8
            Or ``(indices, batch)`` with ``indices`` of shape (b,) when
            ``return_indices`` is True.
        """
        for indices, batch, failures in self.read_batches(
            batch_size, n_jobs=n_jobs, on_error=on_error
        ):
            for message in failures:
                warnings.warn(message, UnreadableTileWarning, stacklevel=2)
            if len(indices):
                yield (indices, batch) if return_indices else batch

    def read_batches(self, batch_size=32, *, n_jobs=None, on_error="raise"):
        """Read the tiles in order, ``batch_size`` at a time, reporting the
        tiles that cannot be read instead of warning of them.

        Reads run on a thread pool: OpenSlide releases the GIL while it
        decodes, so reading scales with threads. The next batches (at least
        two, and at least two tiles per thread) are read while the caller
        works on the current one. Steps that run in joblib workers
        use it and warn of the failures in the caller's process, where a
        dask or loky worker's warning would be lost.

        Parameters
        ----------
        batch_size : int, default=32
            Tiles per batch (the last batch may be smaller).
        n_jobs : int, default=None
            Reader threads; ``None`` means 1, ``-1`` all cores.
        on_error : {"raise", "skip"}, default="raise"
            What to do with a tile that cannot be read (a corrupt tile in
            the file): ``"raise"`` the :class:`~sklearn_gastric.io.SlideError`
            naming the slide and the tile, or ``"skip"``: leave the tile out
            of its batch and report it in ``failures``. Nothing is warned
            either way.

        Yields
        ------
        indices : ndarray of shape (b,), dtype int
            The positions in the bag of the tiles in ``batch``, ascending.
        batch : ndarray of shape (b, tile_size, tile_size, 3), dtype uint8
            Their pixels, a fresh writable array. With ``on_error="skip"``
            ``b`` may be smaller than ``batch_size``, or 0 when every tile of
            the batch failed (such a batch is still yielded, to report them).
        failures : list of str
            One message per tile of the batch that was skipped, naming the
            slide, the tile's index and its level-0 coordinates; empty with
            ``on_error="raise"``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_gastric.preprocessing import Tiler
        >>> slide = np.zeros((64, 80, 3), dtype=np.uint8)
        >>> (bag,) = Tiler(tile_size=32).fit_transform([slide])
        >>> for indices, batch, failures in bag.read_batches(3, on_error="skip"):
        ...     print(indices, batch.shape, failures)
        [0 1 2] (3, 32, 32, 3) []
        [3] (1, 32, 32, 3) []
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}.")
        n_tiles = len(self)
        if n_tiles == 0:
            return
        n_threads = _effective_threads(n_jobs)
        tile = self.tile_size
        with ThreadPoolExecutor(max_workers=n_threads) as pool:

            def submit(start):
                # Each reader writes straight into its slot of the batch: no
                # list of tiles to stack afterwards.
                stop = min(start + batch_size, n_tiles)
                batch = np.empty((stop - start, tile, tile, 3), dtype=np.uint8)
                futures = [
                    pool.submit(self._read_into, batch, slot, index)
                    for slot, index in enumerate(range(start, stop))
                ]
                return start, batch, futures

            # Batches in flight: enough that every reader has a tile queued
            # behind the one it reads, so that one slow tile (a JPEG tile
            # cache miss, a busy core) does not stall the network.
            ahead = max(2, -(-2 * n_threads // batch_size))
            starts = iter(range(0, n_tiles, batch_size))
            pending = deque(submit(start) for start in islice(starts, ahead))
            while pending:
                start, batch, futures = pending.popleft()
                following = next(starts, None)
                if following is not None:
                    pending.append(submit(following))
                kept, failures = [], []
                for slot, future in enumerate(futures):
                    try:
                        future.result()
                    except SlideError as exc:
                        if on_error == "raise":
                            for _, _, queued in pending:
                                for other in queued:
                                    other.cancel()
                            for other in futures:
                                other.cancel()
                            raise
                        failures.append(f"{exc}; the tile is skipped.")
                    else:
                        kept.append(slot)
                indices = np.arange(start, start + len(batch))
                if failures:
                    indices, batch = indices[kept], batch[kept]
                yield indices, batch, failures

    def _read_into(self, batch, slot, index):
        batch[slot] = self.read_tile(index)


def _effective_threads(n_jobs):
    import os

    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int or -1.")
    return int(n_jobs)
