"""The stain transform's arithmetic and the per-slide estimation view as they
were before the fast paths (commit 6d98e31), kept as the reference that the
fast paths are checked against (tests) and timed against (benchmarks)."""

import warnings

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from sklearn_gastric.io import low_resolution_view
from sklearn_gastric.preprocessing._stain_methods import _tissue_pixels

IO = 240.0
BETA = 0.15
_OD_LUT = np.maximum(-np.log(np.maximum(np.arange(256), 1) / IO), 0).astype(np.float32)


class ReferenceTransform:
    """``StainTransform(method, source, target)`` computed one step at a time,
    as before: float32 optical densities and products, scikit-image's float64
    Lab conversions for Reinhard."""

    def __init__(self, method, source, target):
        self.method = method
        self.source = {k: np.asarray(v, dtype=np.float64) for k, v in source.items()}
        self.target = {k: np.asarray(v, dtype=np.float64) for k, v in target.items()}
        if method == "reinhard":
            self._scale = self.target["std"] / self.source["std"]
        else:
            scale = (
                self.target["max_concentrations"] / self.source["max_concentrations"]
            )
            self._unmix = (np.linalg.pinv(self.source["stains"]) * scale).astype(
                np.float32
            )
            self._remix = self.target["stains"].astype(np.float32)

    def __call__(self, rgb):
        rgb = np.asarray(rgb, dtype=np.uint8)
        if rgb.size == 0:
            return rgb.copy()
        od = _OD_LUT[rgb]
        if self.method == "reinhard":
            normalised = self._reinhard(rgb)
        else:
            concentrations = np.maximum(od @ self._unmix, 0)
            normalised = IO * np.exp(-(concentrations @ self._remix))
        weight = np.minimum(od.max(axis=-1, keepdims=True) / BETA, 1.0)
        out = weight * normalised + (1 - weight) * rgb
        out = np.nan_to_num(out, nan=255.0, posinf=255.0, neginf=0.0)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _reinhard(self, rgb):
        lab = rgb2lab(rgb.reshape(-1, 1, 3)).reshape(-1, 3)
        lab = (lab - self.source["mean"]) * self._scale + self.target["mean"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = lab2rgb(lab.reshape(-1, 1, 3)).reshape(rgb.shape) * 255.0
        return out.astype(np.float32)


def reference_slide_tissue_pixels(slide):
    """The pixels a slide's stains were estimated from: every tissue pixel of
    a sampled view of longest side 2048, read from all of the level it needs."""
    downsample = max(1.0, max(slide.dimensions) / 2048)
    view, _ = low_resolution_view(slide, downsample, reduce="sample")
    return _tissue_pixels(view)
