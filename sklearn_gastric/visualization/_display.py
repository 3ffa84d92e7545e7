"""LesionMapDisplay: the slide, its lesion map, the top-K tiles and their graph."""

import numpy as np

from ..graph import SlideGraph
from ..graph._confidence import OOD_WARNING
from ..preprocessing import TileBag
from ._drawing import (
    draw_gallery,
    draw_legend,
    draw_overlay,
    draw_regions,
    draw_scale_bar,
    draw_tiles,
    outlined_tile,
)
from ._gallery import read_tiles_at
from ._lesion_map import lesion_map

__all__ = ["LesionMapDisplay"]


class LesionMapDisplay:
    """Lesion map visualisation, in the style of scikit-learn's ``*Display``.

    Shows what claim 7 of the method asks to show the pathologist: the slide
    thumbnail with the lesion probability overlaid, the suspected lesion
    regions outlined, the top-K tiles outlined and numbered in score order,
    the slide graph's edges between them, and the predicted class with the
    class probabilities in the title. Optionally, the top-K tiles at the
    resolution the segmenter read them, numbered as on the map, in an inset
    gallery to the left of it.

    Build it with :meth:`from_prediction` (a slide's
    :func:`~sklearn_gastric.pipeline.predict_slides` output) or
    :meth:`from_bag`; the constructor
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
    mpp : float, default=None
        Microns per level-0 pixel, for the scale bar; None draws none.
    out_of_distribution : bool, default=None
        True puts a warning in the title that the slide is unlike the
        training slides, so its class and probabilities are not to be
        trusted.
    tiles : ndarray of shape (n_top, h, w, 3), dtype uint8, default=None
        The top-K tiles' pixels, in the order of ``tile_coords``, for the
        inset gallery; None draws no gallery.
    tile_prob_maps : ndarray of shape (n_top, map_h, map_w), default=None
        Their lesion probability maps, to outline their pixels above the
        threshold in the gallery.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the display.
    figure_ : matplotlib Figure
        Figure holding the axes.
    image_ : matplotlib AxesImage
        The thumbnail.
    overlay_ : matplotlib AxesImage
        The lesion probability above the threshold, as RGBA: fully
        transparent at or below it and where no tile was analysed.
    legend_ : matplotlib Legend or None
        The legend of the outlines.
    scale_bar_ : AnchoredSizeBar or None
        The scale bar (None without ``mpp``).
    contours_ : list of matplotlib Line2D
        The outlines of the suspected lesion regions.
    tiles_ : list of matplotlib Rectangle
        The top-K tiles' outlines, in score order.
    edges_ : matplotlib LineCollection or None
        The graph's edges.
    colorbar_ : matplotlib Colorbar or None
        The probability colour bar.
    gallery_ : matplotlib AnchoredOffsetbox or None
        The inset gallery of the top-K tiles (None without ``tiles``).

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
        mpp=None,
        out_of_distribution=None,
        tiles=None,
        tile_prob_maps=None,
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
        self.mpp = mpp
        self.out_of_distribution = out_of_distribution
        self.tiles = tiles
        self.tile_prob_maps = tile_prob_maps

    def plot(
        self,
        ax=None,
        *,
        cmap="autumn_r",
        alpha=(0.3, 0.75),
        show_regions=True,
        show_tiles=True,
        show_edges=False,
        legend=True,
        scale_bar=True,
        colorbar=True,
        show_gallery=True,
        gallery_columns=2,
        gallery_tile_inches=0.9,
        tile_color="#0072b2",
        edge_color="#0072b2",
        region_color="black",
    ):
        """Draw the display.

        The tissue stays visible: pixels whose lesion probability is at or
        below the map's threshold are not painted at all; above it the
        colour runs along ``cmap`` and the opacity grows with the
        probability.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made when None.
        cmap : str or matplotlib Colormap, default="autumn_r"
            Colour map of the overlay, from the threshold (its low end) to
            probability 1 (its high end).
        alpha : float or (float, float), default=(0.3, 0.75)
            Opacity of the overlay just above the threshold and at
            probability 1 (linear in between); one float: the same opacity
            for every painted pixel.
        show_regions : bool, default=True
            Outline the suspected lesion regions (probability above the
            threshold).
        show_tiles : bool, default=True
            Outline and number the top-K tiles.
        show_edges : bool, default=False
            Draw the slide graph's edges between the top-K tiles.
        legend : bool, default=True
            A legend of the outlines, below the image.
        scale_bar : bool, default=True
            A scale bar in µm, when ``mpp`` is known.
        colorbar : bool, default=True
            A colour bar of the overlay's probabilities.
        show_gallery : bool, default=True
            The inset gallery of the top-K tiles, when the display has
            ``tiles``; the tiles' pixels above the threshold are outlined in
            ``region_color``.
        gallery_columns : int, default=2
            Tiles per row of the gallery.
        gallery_tile_inches : float, default=0.9
            Side of a gallery tile in the figure.
        tile_color, edge_color, region_color : str
            Colours of the top-K tile outlines, the graph edges and the
            region outlines.

        Returns
        -------
        display : LesionMapDisplay
            ``self``, with the matplotlib objects stored.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 6.5))
        alpha = _alpha_range(alpha)
        width, height = self.lesion_map.slide_dimensions
        extent = self.thumbnail_extent
        if extent is None:
            extent = (0, width, height, 0)
        self.image_ = ax.imshow(
            self.thumbnail, extent=tuple(extent), interpolation="bilinear", zorder=1
        )
        self.overlay_, scale = draw_overlay(ax, self.lesion_map, cmap, alpha)
        self.contours_ = (
            draw_regions(ax, self.lesion_map, region_color) if show_regions else []
        )
        self.tiles_, self.edges_ = [], None
        if show_tiles:
            self.tiles_, self.edges_ = draw_tiles(
                ax,
                self.tile_coords,
                self.tile_footprint,
                self.adjacency,
                name=self.lesion_map.name,
                tile_color=tile_color,
                edge_color=edge_color,
                show_edges=show_edges,
            )
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(self._title(), fontsize=9)
        ax.set_axis_off()
        self.legend_ = None
        if legend:
            self.legend_ = draw_legend(
                ax,
                threshold=self.lesion_map.threshold,
                regions=self.contours_,
                tiles=self.tiles_,
                edges=self.edges_,
                region_color=region_color,
                tile_color=tile_color,
            )
        self.scale_bar_ = draw_scale_bar(ax, self.mpp, width) if scale_bar else None
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(scale, ax=ax, fraction=0.046, pad=0.04)
            self.colorbar_.set_label(
                f"lesion probability (clear at or below {self.lesion_map.threshold:g})"
            )
        self.gallery_ = None
        if show_gallery and self.tiles is not None:
            self.gallery_ = draw_gallery(
                ax,
                self._outlined_tiles(region_color),
                n_cols=gallery_columns,
                tile_inches=gallery_tile_inches,
                tile_color=tile_color,
            )
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _outlined_tiles(self, color):
        """The gallery's tiles, their pixels above the threshold outlined."""
        name = self.lesion_map.name
        n_top = 0 if self.tile_coords is None else len(self.tile_coords)
        if len(self.tiles) != n_top:
            raise ValueError(
                f"Slide {name!r}: {len(self.tiles)} gallery tiles for {n_top} "
                "top-K tiles in tile_coords."
            )
        maps = self.tile_prob_maps
        if maps is not None and len(maps) != len(self.tiles):
            raise ValueError(
                f"Slide {name!r}: {len(maps)} tile_prob_maps for "
                f"{len(self.tiles)} gallery tiles."
            )
        threshold = self.lesion_map.threshold
        return [
            outlined_tile(tile, None if maps is None else maps[i], threshold, color)
            for i, tile in enumerate(self.tiles)
        ]

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
        title = f"{name}: {classes[int(np.argmax(proba))]}\n{listed}"
        if self.out_of_distribution:
            title = f"{OOD_WARNING}\n{title}"
        return title

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
        gallery=False,
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
        max_size, gallery, ax, **plot_kwargs
            See :meth:`from_prediction`.

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
            bag.require("scores", hint="pass k=None, or run a PatchSegmenter first")
            tile_coords = bag.coords[bag.score_order()[:k]]
        return cls._assemble(
            bag,
            tile_coords=tile_coords,
            adjacency=adjacency,
            classes=classes,
            proba=proba,
            threshold=threshold,
            downsample=downsample,
            max_size=max_size,
            gallery=gallery,
        ).plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_prediction(
        cls, prediction, *, max_size=1024, gallery=False, ax=None, **plot_kwargs
    ):
        """Display a slide's prediction: its lesion map, top tiles, graph and class.

        Parameters
        ----------
        prediction : SlidePrediction
            One slide's prediction, from
            :func:`~sklearn_gastric.pipeline.predict_slides`. Its lesion map
            (and so the threshold of the regions) is drawn as it is.
        max_size : int, default=1024
            Longest side of the thumbnail in pixels
            (:meth:`~sklearn_gastric.io.Slide.read_view`).
        gallery : bool, default=False
            Read the top-K tiles again from the slide, as the segmenter read
            them, for the inset gallery (``tiles`` of the display).
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LesionMapDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from sklearn_gastric.pipeline import SlidePrediction
        >>> from sklearn_gastric.preprocessing import TileBag
        >>> from sklearn_gastric.visualization import LesionMapDisplay, lesion_map
        >>> maps = np.full((1, 4, 4), 0.8, dtype=np.float32)
        >>> bag = TileBag(np.zeros((16, 16, 3), np.uint8), [[0, 0]], 16,
        ...               scores=[12.8], prob_maps=maps)
        >>> prediction = SlidePrediction(
        ...     bag.slide, bag, top_tiles=bag, classes=np.array(["a", "b"]),
        ...     proba=np.array([0.1, 0.9]), lesion_map=lesion_map(bag))
        >>> display = LesionMapDisplay.from_prediction(prediction)
        >>> display.ax_.get_title(), [t.get_xy() for t in display.tiles_]
        ('array(16x16): b\\na 0.10, b 0.90', [(0.0, 0.0)])
        >>> import matplotlib.pyplot as plt
        >>> plt.close(display.figure_)
        """
        bag = prediction.bag
        adjacency = None
        if prediction.graph is not None and prediction.graph.coords is not None:
            adjacency = prediction.graph.adjacency
        tile_coords = prediction.top_coords
        thumbnail, extent = _thumbnail(bag.slide, max_size)
        tiles = tile_maps = None
        if gallery and len(tile_coords):
            tiles, tile_maps = read_tiles_at(bag, tile_coords)
        display = cls(
            prediction.lesion_map,
            thumbnail,
            thumbnail_extent=extent,
            tile_coords=tile_coords if len(tile_coords) else None,
            tile_footprint=bag.footprint,
            adjacency=adjacency,
            classes=prediction.classes,
            proba=prediction.proba,
            bag=bag,
            mpp=_slide_mpp(bag.slide),
            out_of_distribution=prediction.out_of_distribution,
            tiles=tiles,
            tile_prob_maps=tile_maps,
        )
        return display.plot(ax=ax, **plot_kwargs)

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

        .. deprecated:: 0.1
            A display draws; it does not run a pipeline. Use
            ``LesionMapDisplay.from_prediction(predict_slides(pipe, [slide])[0])``
            (:func:`~sklearn_gastric.pipeline.predict_slides`), which also
            keeps the prediction for :func:`export_geojson`. This method
            will be removed in 0.3.

        Parameters
        ----------
        pipe, slide, threshold, downsample
            The pipeline, one slide, and ``threshold`` and ``downsample`` of
            :func:`~sklearn_gastric.pipeline.predict_slides`.
        max_size, ax, **plot_kwargs
            See :meth:`from_prediction`.

        Returns
        -------
        display : LesionMapDisplay
        """
        import warnings

        from .._prediction import predict_slides

        warnings.warn(
            "LesionMapDisplay.from_pipeline is deprecated in 0.1 and will be "
            "removed in 0.3: use LesionMapDisplay.from_prediction("
            "predict_slides(pipe, [slide])[0]) from sklearn_gastric.pipeline.",
            FutureWarning,
            stacklevel=2,
        )
        if isinstance(slide, (list, tuple)):
            raise TypeError(
                "LesionMapDisplay.from_pipeline shows one slide; got a "
                f"{type(slide).__name__}."
            )
        (prediction,) = predict_slides(
            pipe, [slide], threshold=threshold, downsample=downsample
        )
        return cls.from_prediction(prediction, max_size=max_size, ax=ax, **plot_kwargs)

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
        gallery,
    ):
        """The display of a segmented bag: its lesion map and thumbnail."""
        thumbnail, extent = _thumbnail(bag.slide, max_size)
        tiles = tile_maps = None
        if gallery and tile_coords is not None and len(tile_coords):
            tiles, tile_maps = read_tiles_at(bag, tile_coords)
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
            mpp=_slide_mpp(bag.slide),
            tiles=tiles,
            tile_prob_maps=tile_maps,
        )


def _alpha_range(alpha):
    """``alpha`` as (low, high), each in [0, 1]."""
    low, high = np.broadcast_to(np.asarray(alpha, dtype=float), (2,))
    if not (0 <= low <= 1 and 0 <= high <= 1):
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    return float(low), float(high)


def _slide_mpp(slide):
    """Microns per level-0 pixel along x, or None when the slide has none."""
    mpp = slide.mpp
    return None if mpp is None else float(np.ravel(mpp)[0])


def _thumbnail(slide, max_size):
    """A view of the whole slide at most ``max_size`` pixels a side, and its
    extent in level-0 pixels (:meth:`~sklearn_gastric.io.Slide.read_view`)."""
    view = slide.read_view(max(slide.dimensions) / max_size)
    return view.shrink_to(max_size), view.extent
