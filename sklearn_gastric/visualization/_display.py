"""LesionMapDisplay: the slide, its lesion map, the top-K tiles and their graph."""

import numpy as np

from ..graph import SlideGraph
from ..io import open_slide
from ..preprocessing import TileBag, low_resolution_view
from ._lesion_map import lesion_map

__all__ = ["LesionMapDisplay"]


class LesionMapDisplay:
    """Lesion map visualisation, in the style of scikit-learn's ``*Display``.

    Shows what claim 7 of the method asks to show the pathologist: the slide
    thumbnail with the lesion probability overlaid, the suspected lesion
    regions outlined, the top-K tiles outlined and numbered in score order,
    the slide graph's edges between them, and the predicted class with the
    class probabilities in the title.

    Build it with :meth:`from_pipeline` or :meth:`from_bag`; the constructor
    takes the already computed pieces. All drawing is in level-0 pixel
    coordinates.

    Parameters
    ----------
    lesion_map : LesionMap
        The slide's lesion map (:func:`lesion_map`).
    thumbnail : ndarray of shape (h, w, 3), dtype uint8
        A low-resolution view of the whole slide.
    thumbnail_extent : (float, float, float, float), default=None
        ``(left, right, bottom, top)`` of the thumbnail in level-0 pixels
        (matplotlib's ``extent``); None: exactly the slide,
        ``(0, width, height, 0)``.
    tile_coords : ndarray of shape (n_top, 2), default=None
        Level-0 ``(x, y)`` of the top-K tiles, highest score first.
    tile_footprint : int, default=None
        Side of a tile in level-0 pixels; needed with ``tile_coords``.
    adjacency : ndarray of shape (n_top, n_top), default=None
        The graph over the top-K tiles; None draws no edge.
    classes : array-like of shape (n_classes,), default=None
        Class names of ``proba``.
    proba : array-like of shape (n_classes,), default=None
        The slide's class probabilities; with ``classes``, shown in the title.
    bag : TileBag, default=None
        The segmented tiles the map was made from, kept so that the regions
        can be exported without segmenting again
        (``export_geojson(display.bag, path)``).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the display.
    figure_ : matplotlib Figure
        Figure holding the axes.
    image_ : matplotlib AxesImage
        The thumbnail.
    overlay_ : matplotlib AxesImage
        The lesion probability (transparent where no tile was analysed).
    contours_ : list of matplotlib Line2D
        The outlines of the suspected lesion regions.
    tiles_ : list of matplotlib Rectangle
        The top-K tiles' outlines, in score order.
    edges_ : matplotlib LineCollection or None
        The graph's edges.
    colorbar_ : matplotlib Colorbar or None
        The probability colour bar.

    See Also
    --------
    lesion_map : Compute the map.
    export_geojson : Export the regions to QuPath.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> from sklearn_gastric.visualization import LesionMapDisplay
    >>> maps = np.zeros((2, 4, 4), dtype=np.float32)
    >>> maps[1, :2, 2:] = 0.9
    >>> bag = TileBag(np.full((32, 64, 3), 200, np.uint8), [[0, 0], [32, 0]], 32,
    ...               scores=maps.sum(axis=(1, 2)), prob_maps=maps)
    >>> display = LesionMapDisplay.from_bag(
    ...     bag, k=2, classes=["negative", "LGIN"], proba=[0.3, 0.7])
    >>> display.ax_.get_title()
    'array(32x64): LGIN\\nnegative 0.30, LGIN 0.70'
    >>> [t.get_xy() for t in display.tiles_]
    [(32.0, 0.0), (0.0, 0.0)]
    >>> import matplotlib.pyplot as plt
    >>> plt.close(display.figure_)
    """

    def __init__(
        self,
        lesion_map,
        thumbnail,
        *,
        thumbnail_extent=None,
        tile_coords=None,
        tile_footprint=None,
        adjacency=None,
        classes=None,
        proba=None,
        bag=None,
    ):
        self.lesion_map = lesion_map
        self.thumbnail = thumbnail
        self.thumbnail_extent = thumbnail_extent
        self.tile_coords = tile_coords
        self.tile_footprint = tile_footprint
        self.adjacency = adjacency
        self.classes = classes
        self.proba = proba
        self.bag = bag

    def plot(
        self,
        ax=None,
        *,
        cmap="inferno",
        alpha=0.5,
        show_regions=True,
        colorbar=True,
        tile_color="cyan",
        edge_color="yellow",
        region_color="lime",
    ):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        cmap : str or matplotlib Colormap, default="inferno"
            Colour map of the probability overlay (0 to 1).
        alpha : float, default=0.5
            Opacity of the overlay.
        show_regions : bool, default=True
            Outline the suspected lesion regions.
        colorbar : bool, default=True
            Add a probability colour bar.
        tile_color, edge_color, region_color : str, default="cyan", "yellow", "lime"
            Colours of the top-K tile outlines, the graph edges and the
            region outlines.

        Returns
        -------
        display : LesionMapDisplay
            ``self``, with the matplotlib objects stored.
        """
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
        from matplotlib.patches import Rectangle

        if ax is None:
            _, ax = plt.subplots()
        result = self.lesion_map
        width, height = result.slide_dimensions
        extent = self.thumbnail_extent
        if extent is None:
            extent = (0, width, height, 0)
        self.image_ = ax.imshow(
            self.thumbnail, extent=tuple(extent), interpolation="bilinear"
        )
        map_h, map_w = result.probability.shape
        d = result.downsample
        overlay = np.ma.masked_array(result.probability, mask=~result.coverage)
        self.overlay_ = ax.imshow(
            overlay,
            extent=(0, map_w * d, map_h * d, 0),
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            alpha=alpha,
            interpolation="nearest",
        )
        self.contours_ = []
        if show_regions and result.regions:
            from skimage.measure import find_contours

            for contour in find_contours(
                np.pad(result.mask, 1).astype(np.float32), 0.5
            ):
                (line,) = ax.plot(
                    (contour[:, 1] - 0.5) * d,
                    (contour[:, 0] - 0.5) * d,
                    color=region_color,
                    linewidth=1.0,
                )
                self.contours_.append(line)
        self.tiles_ = []
        self.edges_ = None
        if self.tile_coords is not None and len(self.tile_coords):
            if self.tile_footprint is None:
                raise ValueError(
                    f"Slide {result.name!r}: tile_coords need tile_footprint, the "
                    "tiles' side in level-0 pixels."
                )
            coords = np.asarray(self.tile_coords, dtype=float)
            side = float(self.tile_footprint)
            centres = coords + side / 2
            if self.adjacency is not None:
                rows, cols = np.nonzero(np.triu(np.asarray(self.adjacency), k=1))
                segments = [(centres[i], centres[j]) for i, j in zip(rows, cols)]
                self.edges_ = LineCollection(
                    segments, colors=edge_color, linewidths=1.0, zorder=3
                )
                ax.add_collection(self.edges_)
            for rank, (x, y) in enumerate(coords, start=1):
                rectangle = Rectangle(
                    (float(x), float(y)),
                    side,
                    side,
                    fill=False,
                    edgecolor=tile_color,
                    linewidth=1.2,
                    zorder=4,
                )
                ax.add_patch(rectangle)
                self.tiles_.append(rectangle)
                ax.text(
                    x + side * 0.05,
                    y + side * 0.05,
                    str(rank),
                    color=tile_color,
                    fontsize=8,
                    ha="left",
                    va="top",
                    zorder=5,
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
                )
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(self._title())
        ax.set_axis_off()
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(
                self.overlay_, ax=ax, fraction=0.046, pad=0.04
            )
            self.colorbar_.set_label("lesion probability")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _title(self):
        name = self.lesion_map.name
        if self.proba is None or self.classes is None:
            return name
        proba = np.asarray(self.proba, dtype=float).ravel()
        classes = [str(c) for c in self.classes]
        if len(classes) != len(proba):
            raise ValueError(
                f"Slide {name!r}: {len(classes)} classes for {len(proba)} "
                "probabilities."
            )
        listed = ", ".join(f"{c} {p:.2f}" for c, p in zip(classes, proba))
        return f"{name}: {classes[int(np.argmax(proba))]}\n{listed}"

    @classmethod
    def from_bag(
        cls,
        bag,
        *,
        graph=None,
        k=10,
        classes=None,
        proba=None,
        threshold=0.5,
        downsample=None,
        max_size=1024,
        ax=None,
        **plot_kwargs,
    ):
        """Display a slide's lesion map from its segmented tiles.

        Parameters
        ----------
        bag : TileBag
            All tissue tiles of the slide with ``prob_maps`` (the
            segmenter's output).
        graph : SlideGraph, default=None
            The slide graph; its nodes (with ``coords``) are the tiles
            outlined and its edges are drawn. None outlines the ``k``
            highest-scoring tiles of ``bag`` and draws no edge.
        k : int or None, default=10
            Tiles outlined when ``graph`` is None (needs ``bag.scores``);
            None or 0 outlines none.
        classes : array-like of shape (n_classes,), default=None
            Class names of ``proba``.
        proba : array-like of shape (n_classes,), default=None
            The slide's class probabilities, shown in the title.
        threshold : float, default=0.5
            Threshold of the suspected lesion regions.
        downsample : float, default=None
            Resolution of the lesion map, see :func:`lesion_map`.
        max_size : int, default=1024
            Longest side of the thumbnail in pixels. The thumbnail comes from
            :func:`~sklearn_gastric.preprocessing.low_resolution_view`: the
            coarsest pyramid level (or stored thumbnail) that serves, read
            chunk by chunk.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LesionMapDisplay
        """
        if not isinstance(bag, TileBag):
            raise TypeError(
                f"LesionMapDisplay.from_bag expects a TileBag; got "
                f"{type(bag).__name__}."
            )
        tile_coords, adjacency = None, None
        if graph is not None:
            if not isinstance(graph, SlideGraph):
                raise TypeError(
                    f"graph must be a SlideGraph; got {type(graph).__name__}."
                )
            if graph.coords is None:
                raise ValueError(
                    f"Slide {bag.name!r}: the graph has no node coords to draw."
                )
            tile_coords, adjacency = graph.coords, graph.adjacency
        elif k and len(bag):
            if bag.scores is None:
                raise ValueError(
                    f"Slide {bag.name!r}: the tiles have no 'scores' to pick the "
                    "top-k tiles; pass k=None."
                )
            from ..graph._bags import score_order

            tile_coords = bag.coords[score_order(bag.scores, bag.coords)[:k]]
        return cls._assemble(
            bag,
            tile_coords=tile_coords,
            adjacency=adjacency,
            classes=classes,
            proba=proba,
            threshold=threshold,
            downsample=downsample,
            max_size=max_size,
        ).plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_pipeline(
        cls,
        pipe,
        slide,
        *,
        threshold=0.5,
        downsample=None,
        max_size=1024,
        ax=None,
        **plot_kwargs,
    ):
        """Run a fitted pipeline on one slide and display its lesion map.

        The pipeline's steps are run one by one on ``[slide]``, whatever
        their names: the first output made of TileBags with ``prob_maps``
        (the segmenter's) gives the lesion map, the last TileBag output
        after it (the top-K selector's) the tiles outlined, the last
        :class:`~sklearn_gastric.graph.SlideGraph` output the edges, and the
        final estimator's ``predict_proba`` the title. A pipeline without a
        selector outlines no tile; one without a graph step draws no edge.

        Parameters
        ----------
        pipe : Pipeline
            A fitted pipeline whose steps turn slides into TileBags with
            ``prob_maps`` (e.g. stain → tile → tissue → seg → topk → graph →
            gcn of the design).
        slide : str, os.PathLike, ndarray or Slide
            The slide to show.
        threshold : float, default=0.5
            Threshold of the suspected lesion regions.
        downsample : float, default=None
            Resolution of the lesion map, see :func:`lesion_map`.
        max_size : int, default=1024
            Longest side of the thumbnail in pixels. The thumbnail comes from
            :func:`~sklearn_gastric.preprocessing.low_resolution_view`: the
            coarsest pyramid level (or stored thumbnail) that serves, read
            chunk by chunk.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LesionMapDisplay
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(pipe)
        if isinstance(slide, (list, tuple)):
            raise TypeError(
                "LesionMapDisplay.from_pipeline shows one slide; got a "
                f"{type(slide).__name__}."
            )
        slide = open_slide(slide)
        Xt = [slide]
        full_bag, selected, graph, proba = None, None, None, None
        steps = [(name, est) for name, est in pipe.steps]
        for index, (_, step) in enumerate(steps):
            if step is None or isinstance(step, str):
                continue
            last = index == len(steps) - 1
            if last and hasattr(step, "predict_proba"):
                proba = np.asarray(step.predict_proba(Xt))[0]
                break
            Xt = step.transform(Xt)
            output = Xt[0] if len(Xt) == 1 else None
            if isinstance(output, TileBag):
                if full_bag is None:
                    if output.prob_maps is not None:
                        full_bag = output
                else:
                    selected = output
            elif isinstance(output, SlideGraph):
                graph = output
        if full_bag is None:
            raise ValueError(
                f"Slide {slide.name!r}: no step of the pipeline produced TileBags "
                "with 'prob_maps'; the pipeline needs a segmenter "
                "(FrozenEstimator(PatchSegmenter))."
            )
        classes = getattr(pipe, "classes_", None) if proba is not None else None
        tile_coords, adjacency = None, None
        if graph is not None and graph.coords is not None:
            tile_coords, adjacency = graph.coords, graph.adjacency
        elif selected is not None:
            tile_coords = selected.coords
        return cls._assemble(
            full_bag,
            tile_coords=tile_coords,
            adjacency=adjacency,
            classes=classes,
            proba=proba,
            threshold=threshold,
            downsample=downsample,
            max_size=max_size,
        ).plot(ax=ax, **plot_kwargs)

    @classmethod
    def _assemble(
        cls,
        bag,
        *,
        tile_coords,
        adjacency,
        classes,
        proba,
        threshold,
        downsample,
        max_size,
    ):
        """The display of a segmented bag: its lesion map and thumbnail."""
        thumbnail, extent = _thumbnail(bag.slide, max_size)
        return cls(
            lesion_map(bag, threshold, downsample=downsample),
            thumbnail,
            thumbnail_extent=extent,
            tile_coords=tile_coords,
            tile_footprint=bag.footprint,
            adjacency=adjacency,
            classes=classes,
            proba=proba,
            bag=bag,
        )


def _thumbnail(slide, max_size):
    """A view of the whole slide at most ``max_size`` pixels a side, and its
    extent in level-0 pixels; read chunk by chunk from the coarsest level
    (or the file's stored thumbnail) that serves, so memory stays bounded."""
    from PIL import Image

    width, height = slide.dimensions
    view, downsample = low_resolution_view(slide, max(width, height) / max_size)
    view_h, view_w = view.shape[:2]
    extent = (0.0, view_w * downsample, view_h * downsample, 0.0)
    scale = max_size / max(view_h, view_w)
    if scale < 1:
        size = (max(1, round(view_w * scale)), max(1, round(view_h * scale)))
        view = np.asarray(Image.fromarray(view).resize(size, Image.Resampling.BOX))
    return view, extent
