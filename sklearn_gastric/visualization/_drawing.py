"""The layers of a lesion map display, each drawn on a matplotlib Axes."""

import math

import numpy as np

__all__ = [
    "draw_gallery",
    "draw_legend",
    "draw_overlay",
    "draw_regions",
    "draw_scale_bar",
    "draw_tiles",
    "outlined_tile",
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


def outlined_tile(tile, prob_map, threshold, color):
    """A tile with the boundary of its pixels above ``threshold`` painted in
    ``color``.

    The outline is burnt into the pixels, so that it travels with the tile
    into any image (a figure's axes, an inset's offset box, a report). It is
    one pixel wide per 128 pixels of tile side, at least one, so that it
    survives the tile being drawn a few times smaller than its resolution.

    Parameters
    ----------
    tile : ndarray of shape (h, w, 3), dtype uint8
    prob_map : ndarray of shape (map_h, map_w) or None
        The tile's lesion probabilities; the map is stretched over the tile.
        None returns a copy of the tile.
    threshold : float
    color : matplotlib colour

    Returns
    -------
    tile : ndarray of shape (h, w, 3), dtype uint8
    """
    from matplotlib.colors import to_rgb
    from scipy.ndimage import binary_erosion
    from skimage.transform import resize

    tile = np.array(tile, dtype=np.uint8)
    if prob_map is None:
        return tile
    lesion = resize(
        np.asarray(prob_map) > threshold,
        tile.shape[:2],
        order=0,
        anti_aliasing=False,
        preserve_range=True,
    ).astype(bool)
    width = max(1, max(tile.shape[:2]) // 128)
    # Inner boundary, the tile's edge counting as outside, so that a lesion
    # reaching the edge is still outlined there.
    inside = binary_erosion(lesion, iterations=width, border_value=0)
    tile[lesion & ~inside] = np.round(np.asarray(to_rgb(color)) * 255)
    return tile


def draw_gallery(ax, tiles, *, n_cols, tile_inches, tile_color):
    """The top-K tiles as a grid of numbered, framed images to the left of
    the map.

    Each image is drawn at ``tile_inches`` a side whatever the figure's
    size, so the tiles keep the detail the thumbnail loses.

    Parameters
    ----------
    ax : matplotlib Axes
        The lesion map's axes.
    tiles : ndarray of shape (n_tiles, h, w, 3), dtype uint8
        Highest score first, outlines already painted (:func:`outlined_tile`).
    n_cols : int
        Tiles per row.
    tile_inches : float
        Side of a tile in the figure.
    tile_color : matplotlib colour
        Of the rank numbers and the frames, as on the map.

    Returns
    -------
    gallery : AnchoredOffsetbox
    """
    from matplotlib.offsetbox import (
        AnchoredOffsetbox,
        HPacker,
        OffsetImage,
        PaddedBox,
        TextArea,
        VPacker,
    )

    cells = []
    for rank, tile in enumerate(tiles, start=1):
        # OffsetImage scales by points (1/72 inch), and adapts to the dpi.
        image = PaddedBox(
            OffsetImage(tile, zoom=tile_inches * 72 / tile.shape[1]),
            pad=1,
            draw_frame=True,
            patch_attrs={
                "edgecolor": tile_color,
                "facecolor": "none",
                "linewidth": 1.2,
                "boxstyle": "square,pad=0",
            },
        )
        label = TextArea(
            f"#{rank}",
            textprops={"color": tile_color, "fontsize": 7, "fontweight": "bold"},
        )
        cells.append(VPacker(children=[label, image], align="center", pad=0, sep=1))
    rows = [
        HPacker(children=cells[start : start + n_cols], align="top", pad=0, sep=4)
        for start in range(0, len(cells), n_cols)
    ]
    heading = TextArea(
        f"top-{len(cells)} tiles, as segmented",
        textprops={"fontsize": 7},
    )
    gallery = AnchoredOffsetbox(
        loc="upper right",
        child=VPacker(children=[heading, *rows], align="left", pad=0, sep=4),
        pad=0.2,
        borderpad=0,
        frameon=False,
        bbox_to_anchor=(-0.03, 1.0),
        bbox_transform=ax.transAxes,
    )
    ax.add_artist(gallery)
    return gallery
