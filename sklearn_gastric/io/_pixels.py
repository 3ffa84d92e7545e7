"""Pixel arithmetic shared by slide reading, views and TIFF writing."""

import numpy as np

__all__ = ["block_mean", "resize_area", "rgba_to_rgb_on_white"]


def rgba_to_rgb_on_white(rgba):
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


def block_mean(image, factor):
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


def resize_area(image, out_h, out_w):
    """Area-average (box filter) resize of an RGB uint8 image; the one resizing
    of whole-slide views (thumbnails, displays)."""
    if image.shape[:2] == (out_h, out_w):
        return image
    from PIL import Image

    resized = Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BOX)
    return np.asarray(resized)
