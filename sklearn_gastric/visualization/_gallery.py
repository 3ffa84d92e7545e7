"""The top-K tiles of a prediction at the resolution the segmenter saw them,
and the slide graph over them."""

import math

import numpy as np

from ._drawing import outlined_tile

__all__ = ["SlideGraphDisplay", "TileGalleryDisplay", "read_tiles_at"]


def read_tiles_at(bag, coords):
    """The pixels and lesion maps of the bag's tiles at ``coords``.

    Parameters
    ----------
    bag : TileBag
        The slide's segmented tiles (bags hold no pixels: each tile is read
        again, as the segmenter read it).
    coords : ndarray of shape (n, 2)
        Level-0 ``(x, y)`` of tiles of the bag, in the order wanted.

    Returns
    -------
    tiles : ndarray of shape (n, tile_size, tile_size, 3), dtype uint8
    prob_maps : ndarray of shape (n, map_h, map_w) or None
        None when the bag has no ``prob_maps``.

    Raises
    ------
    ValueError
        A coordinate is not one of the bag's tiles.
    """
    rows = _rows_at(bag, coords)
    tiles = np.stack([bag.read_tile(i) for i in rows])
    return tiles, None if bag.prob_maps is None else bag.prob_maps[rows]


def _rows_at(bag, coords):
    """The bag's rows of the tiles at ``coords``, in their order."""
    index = {tuple(xy): i for i, xy in enumerate(bag.coords.tolist())}
    coords = np.asarray(coords).tolist()
    missing = [xy for xy in coords if tuple(xy) not in index]
    if missing:
        raise ValueError(
            f"Slide {bag.name!r}: no tile of the bag at (x, y) = {missing[0]}."
        )
    return [index[tuple(xy)] for xy in coords]


class TileGalleryDisplay:
    """The top-K tiles side by side, with their lesion outline and score.

    Each tile is shown as the segmenter read it (its level, stain
    normalised when the pipeline normalises), numbered by rank as on the
    lesion map, with the outline of its pixels above the lesion threshold.

    Parameters
    ----------
    tiles : ndarray of shape (n_tiles, tile_size, tile_size, 3), dtype uint8
        The tiles, highest score first.
    scores : array-like of shape (n_tiles,)
        Their lesion scores.
    prob_maps : ndarray of shape (n_tiles, map_h, map_w), default=None
        Their lesion probability maps; None draws no outline.
    threshold : float, default=0.5
        Lesion threshold of the outlines.
    coords : array-like of shape (n_tiles, 2), default=None
        Level-0 ``(x, y)`` of the tiles, shown under each.
    name : str, default="slide"
        The slide's name, in the title.

    Attributes
    ----------
    figure_ : matplotlib Figure
    axes_ : list of matplotlib Axes
        One per tile, in rank order.
    """

    def __init__(
        self, tiles, scores, *, prob_maps=None, threshold=0.5, coords=None, name="slide"
    ):
        self.tiles = tiles
        self.scores = scores
        self.prob_maps = prob_maps
        self.threshold = threshold
        self.coords = coords
        self.name = name

    def plot(self, *, n_cols=5, tile_inches=1.6, outline_color="black"):
        """Draw the gallery.

        Parameters
        ----------
        n_cols : int, default=5
            Tiles per row.
        tile_inches : float, default=1.6
            Size of a tile in the figure.
        outline_color : str, default="black"
            Colour of the lesion outlines.

        Returns
        -------
        display : TileGalleryDisplay
        """
        import matplotlib.pyplot as plt

        n_tiles = len(self.tiles)
        n_cols = max(1, min(n_cols, n_tiles))
        n_rows = max(1, math.ceil(n_tiles / n_cols))
        figure, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(n_cols * tile_inches, n_rows * (tile_inches + 0.35) + 0.4),
            squeeze=False,
        )
        for ax in axes.ravel()[n_tiles:]:
            ax.set_axis_off()
        self.axes_ = list(axes.ravel()[:n_tiles])
        for rank, ax in enumerate(self.axes_, start=1):
            prob_map = None if self.prob_maps is None else self.prob_maps[rank - 1]
            tile = outlined_tile(
                self.tiles[rank - 1], prob_map, self.threshold, outline_color
            )
            ax.imshow(tile, interpolation="antialiased")
            label = f"#{rank}  score {float(self.scores[rank - 1]):.3g}"
            if self.coords is not None:
                x, y = (int(v) for v in self.coords[rank - 1])
                label += f"\n(x, y) = ({x}, {y})"
            ax.set_title(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        figure.suptitle(
            f"{self.name}: top-{n_tiles} tiles (outline: lesion p > "
            f"{self.threshold:g})",
            fontsize=9,
        )
        figure.tight_layout()
        self.figure_ = figure
        return self

    @classmethod
    def from_prediction(cls, prediction, *, tiles=None, **plot_kwargs):
        """The gallery of a prediction's top-K tiles.

        Parameters
        ----------
        prediction : SlidePrediction
            From :func:`~sklearn_gastric.pipeline.predict_slides`.
        tiles : ndarray of shape (n_top, h, w, 3), default=None
            The top-K tiles' pixels when they were already read (a
            :class:`LesionMapDisplay`'s ``tiles``); None reads them.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : TileGalleryDisplay

        Raises
        ------
        ValueError
            The prediction has no top-K tiles.
        """
        coords = prediction.top_coords
        if not len(coords):
            raise ValueError(f"Slide {prediction.name!r}: no top-K tile to show.")
        bag = prediction.bag
        rows = _rows_at(bag, coords)
        if tiles is None:
            tiles = np.stack([bag.read_tile(i) for i in rows])
        prob_maps = None if bag.prob_maps is None else bag.prob_maps[rows]
        return cls(
            tiles,
            prediction.top_scores,
            prob_maps=prob_maps,
            threshold=prediction.lesion_map.threshold,
            coords=coords,
            name=prediction.name,
        ).plot(**plot_kwargs)


class SlideGraphDisplay:
    """The slide graph: one node per top-K tile at its place on the slide,
    numbered by rank, coloured by lesion score, with its edges.

    Parameters
    ----------
    graph : SlideGraph
        With ``coords`` (as :class:`~sklearn_gastric.graph.PearsonGraphBuilder`
        makes them).

    Attributes
    ----------
    figure_ : matplotlib Figure
    ax_ : matplotlib Axes
    nodes_ : matplotlib PathCollection
    edges_ : matplotlib LineCollection or None
    """

    def __init__(self, graph):
        self.graph = graph

    def plot(self, ax=None, *, cmap="autumn_r"):
        """Draw the graph (networkx), y pointing down as on the slide.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        cmap : str, default="autumn_r"
            Colour map of the nodes' scores.

        Returns
        -------
        display : SlideGraphDisplay
        """
        import matplotlib.pyplot as plt
        import networkx as nx

        graph = self.graph
        if graph.coords is None:
            raise ValueError(f"Slide {graph.name!r}: the graph has no node coords.")
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        adjacency = np.asarray(graph.adjacency)
        network = nx.from_numpy_array(np.triu(adjacency, k=1))
        coords = np.asarray(graph.coords, dtype=float)
        positions = {i: (x, -y) for i, (x, y) in enumerate(coords)}
        scores = (
            np.zeros(graph.n_nodes)
            if graph.scores is None
            else np.asarray(graph.scores)
        )
        self.nodes_ = nx.draw_networkx_nodes(
            network,
            positions,
            ax=ax,
            node_color=scores,
            cmap=cmap,
            node_size=160,
            edgecolors="black",
            linewidths=0.5,
        )
        self.edges_ = None
        if network.number_of_edges():
            self.edges_ = nx.draw_networkx_edges(
                network, positions, ax=ax, edge_color="#0072b2", alpha=0.6
            )
        nx.draw_networkx_labels(
            network,
            positions,
            labels={i: str(i + 1) for i in range(graph.n_nodes)},
            ax=ax,
            font_size=7,
        )
        ax.set_aspect("equal")
        ax.margins(0.1)
        ax.set_title(
            f"{graph.name}: graph over the top-{graph.n_nodes} tiles, "
            f"{network.number_of_edges()} edges",
            fontsize=8,
        )
        ax.set_axis_off()
        self.ax_ = ax
        self.figure_ = ax.figure
        return self
