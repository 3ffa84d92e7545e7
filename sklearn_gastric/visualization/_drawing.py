"""The layers of a lesion map display, each drawn on a matplotlib Axes."""

import numpy as np

__all__ = ["draw_overlay", "draw_regions", "draw_tiles"]


def draw_overlay(ax, result, cmap, alpha):
    """The lesion probability, transparent where no tile was analysed."""
    map_h, map_w = result.probability.shape
    d = result.downsample
    overlay = np.ma.masked_array(result.probability, mask=~result.coverage)
    return ax.imshow(
        overlay,
        extent=(0, map_w * d, map_h * d, 0),
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        alpha=alpha,
        interpolation="nearest",
    )


def draw_regions(ax, result, color):
    """The outlines of the suspected lesion regions."""
    from skimage.measure import find_contours

    if not result.regions:
        return []
    d = result.downsample
    lines = []
    for contour in find_contours(np.pad(result.mask, 1).astype(np.float32), 0.5):
        (line,) = ax.plot(
            (contour[:, 1] - 0.5) * d,
            (contour[:, 0] - 0.5) * d,
            color=color,
            linewidth=1.0,
        )
        lines.append(line)
    return lines


def draw_tiles(ax, coords, footprint, adjacency, *, name, tile_color, edge_color):
    """The top-K tiles outlined and numbered, and the graph's edges."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    if coords is None or not len(coords):
        return [], None
    if footprint is None:
        raise ValueError(
            f"Slide {name!r}: tile_coords need tile_footprint, the tiles' side "
            "in level-0 pixels."
        )
    coords = np.asarray(coords, dtype=float)
    side = float(footprint)
    edges = None
    if adjacency is not None:
        centres = coords + side / 2
        rows, cols = np.nonzero(np.triu(np.asarray(adjacency), k=1))
        edges = LineCollection(
            [(centres[i], centres[j]) for i, j in zip(rows, cols)],
            colors=edge_color,
            linewidths=1.0,
            zorder=3,
        )
        ax.add_collection(edges)
    tiles = []
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
        tiles.append(rectangle)
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
    return tiles, edges
