"""The virtual pyramid of a slide held as an RGB array."""

import numpy as np

from ._pixels import block_mean

__all__ = ["array_pyramid", "read_array_region"]

# Each virtual level is this much smaller than the one above; levels are
# added while the next one would still be at least this large.
_LEVEL_FACTOR = 4
_SMALLEST_LEVEL_SIDE = 512


def array_pyramid(width, height):
    """``(level_dimensions, level_downsamples)`` of an array slide."""
    downsamples = [1]
    while (
        max(width, height) / (downsamples[-1] * _LEVEL_FACTOR) >= _SMALLEST_LEVEL_SIDE
    ):
        downsamples.append(downsamples[-1] * _LEVEL_FACTOR)
    dimensions = tuple((max(1, width // d), max(1, height // d)) for d in downsamples)
    return dimensions, tuple(float(d) for d in downsamples)


def read_array_region(array, location, downsample, size):
    """A region of an array slide at a virtual level: level-0 ``location``,
    ``size`` in level pixels, white past the edge, block-averaged."""
    x, y = location
    w, h = size
    factor = int(round(downsample))
    height, width = array.shape[:2]
    region = np.full((h * factor, w * factor, 3), 255, dtype=np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w * factor, width), min(y + h * factor, height)
    if x1 > x0 and y1 > y0:
        region[y0 - y : y1 - y, x0 - x : x1 - x] = array[y0:y1, x0:x1]
    return block_mean(region, factor)
