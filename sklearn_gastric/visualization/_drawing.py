"""The layers of a lesion map display, each drawn on a matplotlib Axes."""

import math

import numpy as np

__all__ = [
    "draw_legend",
    "draw_overlay",
    "draw_regions",
    "draw_scale_bar",
    "draw_tiles",
    "overlay_rgba",
]


def overlay_rgba(result, cmap, alpha):
    """The lesion map as an RGBA image that leaves the tissue visible.

    Pixels at or below the lesion threshold, and pixels no tile covers, are
    fully transparent. Above it, the colour runs along ``cmap`` from the
    threshold (0) to probability 1 (1), and the opacity grows linearly from
    ``alpha[0]`` just above the threshold to ``alpha[1]`` at probability 1.

    Parameters
    ----------
    result : LesionMap
    cmap : matplotlib Colormap
    alpha : (float, float)

    Returns
    -------
    rgba : ndarray of shape (map_height, map_width, 4), dtype float32
    """
    probability = result.probability
    threshold = result.threshold
    shown = result.coverage & (probability > threshold)
    level = np.zeros(probability.shape, dtype=np.float64)
    if threshold < 1:
        level = np.clip((probability - threshold) / (1 - threshold), 0, 1)
    rgba = np.asarray(cmap(level), dtype=np.float32)
    low, high = alpha
    rgba[..., 3] = np.where(shown, low + (high - low) * level, 0.0)
    return rgba


def draw_overlay(ax, result, cmap, alpha):
    """The lesion probability above the threshold (:func:`overlay_rgba`),
    and the colour scale it uses, for a colour bar."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
    map_h, map_w = result.probability.shape
    d = result.downsample
    image = ax.imshow(
        overlay_rgba(result, cmap, alpha),
        extent=(0, map_w * d, map_h * d, 0),
        interpolation="nearest",
        zorder=2,
    )
    scale = ScalarMappable(norm=Normalize(result.threshold, 1.0), cmap=cmap)
    return image, scale


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
            linewidth=1.2,
            zorder=3,
        )
        lines.append(line)
    return lines


def draw_tiles(
    ax, coords, footprint, adjacency, *, name, tile_color, edge_color, show_edges
):
    """The top-K tiles outlined and numbered, and (optionally) the graph's edges."""
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
    if show_edges and adjacency is not None:
        centres = coords + side / 2
        rows, cols = np.nonzero(np.triu(np.asarray(adjacency), k=1))
        edges = LineCollection(
            [(centres[i], centres[j]) for i, j in zip(rows, cols)],
            colors=edge_color,
            linewidths=0.8,
            alpha=0.7,
            zorder=4,
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
            zorder=5,
        )
        ax.add_patch(rectangle)
        tiles.append(rectangle)
        # The number sits just outside the tile's top-left corner, so that it
        # hides none of the tissue inside the outline.
        ax.annotate(
            str(rank),
            (float(x), float(y)),
            xytext=(-1, 1),
            textcoords="offset points",
            color="white",
            fontsize=7,
            ha="right",
            va="bottom",
            zorder=6,
            bbox={"facecolor": tile_color, "alpha": 0.85, "pad": 0.8, "lw": 0},
        )
    return tiles, edges


def draw_legend(ax, *, threshold, regions, tiles, edges, region_color, tile_color):
    """A legend of what is outlined: regions, top-K tiles, graph edges."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    if regions:
        handles.append(
            Line2D(
                [], [], color=region_color, lw=1.2, label=f"lesion p > {threshold:g}"
            )
        )
    if tiles:
        handles.append(
            Patch(
                fill=False,
                edgecolor=tile_color,
                label=f"top-{len(tiles)} tiles (rank)",
            )
        )
    if edges is not None:
        handles.append(Line2D([], [], color=edges.get_colors()[0], label="graph edge"))
    if not handles:
        return None
    return ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.0, -0.01),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
    )


def draw_scale_bar(ax, mpp, width):
    """A scale bar in µm, about a fifth of the slide's width, at a round length."""
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    if mpp is None or not math.isfinite(mpp) or mpp <= 0:
        return None
    microns = nice_length(width * mpp / 5)
    label = f"{microns / 1000:g} mm" if microns >= 1000 else f"{microns:g} µm"
    bar = AnchoredSizeBar(
        ax.transData,
        microns / mpp,
        label,
        loc="lower right",
        pad=0.4,
        borderpad=0.5,
        sep=3,
        color="black",
        frameon=True,
        size_vertical=0,
        fontproperties=FontProperties(size=7),
    )
    bar.patch.set_alpha(0.7)
    ax.add_artist(bar)
    return bar


def nice_length(length):
    """The largest 1, 2 or 5 times a power of ten not above ``length`` (> 0)."""
    power = 10 ** math.floor(math.log10(length))
    for step in (5, 2, 1):
        if step * power <= length:
            return step * power
    return power
