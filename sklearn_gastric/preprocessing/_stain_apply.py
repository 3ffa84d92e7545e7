"""The per-pixel arithmetic of :class:`StainTransform`, fast.

A slide's transform runs on every tile read, so its cost is paid per tile.
Pixels are processed in chunks small enough for the CPU cache, channel-major
(three contiguous rows per chunk): numpy's element-wise loops and its small
matrix products are several times faster on contiguous rows than on
interleaved RGB, and every temporary is a preallocated buffer. Both methods
are a handful of 3x3 (or 2x3) matrix products between per-element functions:

- Macenko and Vahadane: ``log`` of the clipped intensities, one product to
  the source concentrations (the unmixing, the optical-density offset and
  the max-concentration scaling folded in), a clamp at zero, one product to
  the target's optical densities (the background intensity folded in as
  ``ln 240``), ``exp``.
- Reinhard (CIE Lab, D65, as :func:`skimage.color.rgb2lab` computes it):
  the sRGB decoding table, one product to ``XYZ / white``, ``cbrt``, one
  product for the whole Lab affine map (Lab is linear in ``cbrt(XYZ /
  white)``, so matching each Lab channel's mean and spread is a 3x3 affine
  map there), the cube, one product back to linear RGB, the sRGB encoding.

The branches of the piecewise Lab and sRGB functions that only very dark
colours reach are patched on the elements that need them. Reinhard maps
that stretch a Lab channel more than 16 times run in float64: float32
rounding, stretched that much, moves out-of-gamut colours by a few grey
levels.
"""

import numpy as np

__all__ = ["MacenkoKernel", "ReinhardKernel", "apply_kernel"]

# Pixels per chunk. Fewer means more Python overhead per pixel; more leaves
# the cache, and a 3x3 product over more than 29127 columns crosses
# OpenBLAS's threading threshold (M * N * K > 262144), whose threads thrash a
# busy machine (measured: 20x slower on a loaded 2-core VM).
CHUNK = 16384

# CIE Lab (D65, 2-degree observer) and sRGB, with scikit-image's constants so
# that the result matches skimage.color.rgb2lab / lab2rgb.
_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_LAB_T0 = 0.008856  # cbrt above, linear below
_LAB_F0 = 0.2068966  # its image: cube above, linear below
_LAB_SLOPE = 7.787
_LAB_OFFSET = 16.0 / 116.0
_SRGB_T0 = 0.0031308  # linear RGB: power above, linear below
_SRGB_DECODED = 0.04045


def _srgb_decoding_table():
    """Linear RGB of each uint8 value, as scikit-image computes it."""
    values = np.arange(256) / 255.0
    return np.where(
        values > _SRGB_DECODED,
        ((values + 0.055) / 1.055) ** 2.4,
        values / 12.92,
    )


_SRGB_LINEAR = _srgb_decoding_table()
_FLOAT32_MAX_STRETCH = 16.0


class _Buffers:
    """The preallocated rows of one chunk; :meth:`view` gives the first
    ``size`` columns of each, for the last, shorter chunk."""

    _ROWS = {
        "pixels": 3,
        "darkest": 1,
        "rgb": 3,
        "out": 3,
        "a": 3,
        "b": 3,
        "weight": 1,
        "zeros": 3,
        "ones": 3,
    }
    _BYTES = ("pixels", "darkest")

    def __init__(self, size, dtype):
        self.size = size
        self._full = {
            name: np.empty((rows, size), np.uint8 if name in self._BYTES else dtype)
            for name, rows in self._ROWS.items()
        }
        self._full["zeros"].fill(0)
        self._full["ones"].fill(1)
        self._set(self._full)

    def _set(self, arrays):
        for name, array in arrays.items():
            setattr(self, name, array[0] if self._ROWS[name] == 1 else array)

    def view(self, size):
        if size != self.size:
            self._set({name: a[:, :size] for name, a in self._full.items()})
            self.size = size
        return self


def apply_kernel(rgb, kernel, weight_table, chunk=CHUNK):
    """Normalise uint8 RGB pixels of any shape ``(..., 3)``, chunk by chunk.

    ``kernel(buffers)`` writes the normalised colour of ``buffers.pixels``
    (3, m) uint8 to ``buffers.out`` (3, m) of ``kernel.dtype`` on the 0-255
    scale; each pixel is then blended with its original by
    ``weight_table[darkest channel]`` and rounded half up.
    """
    flat = rgb.reshape(-1, 3)
    out = np.empty_like(flat)
    buffers = _Buffers(min(chunk, len(flat)), kernel.dtype)
    weight_table = weight_table.astype(kernel.dtype, copy=False)
    for start in range(0, len(flat), chunk):
        pixels = flat[start : start + chunk]
        b = buffers.view(len(pixels))
        np.copyto(b.pixels, pixels.T)
        np.copyto(b.rgb, b.pixels)
        kernel(b)
        _blend(b, weight_table)
        # Values lie in [0, 255.5]: truncation rounds half up, no clip needed.
        np.copyto(b.pixels, b.out, casting="unsafe")
        # Row by row: much faster than one copy into the transposed view.
        for channel in range(3):
            out[start : start + len(pixels), channel] = b.pixels[channel]
    return out.reshape(rgb.shape)


def _blend(b, weight_table):
    """``out = rgb + w * (out - rgb) + 0.5``, ``w`` from the darkest channel."""
    np.minimum(b.pixels[0], b.pixels[1], out=b.darkest)
    np.minimum(b.darkest, b.pixels[2], out=b.darkest)
    np.take(weight_table, b.darkest, out=b.weight)
    b.out -= b.rgb
    b.out *= b.weight
    b.out += b.rgb
    b.out += 0.5


def _patch(values, low, branch):
    """``values[low] = branch(low)`` where the other branch of a piecewise
    function holds; computed on every element when many need it."""
    count = np.count_nonzero(low)
    if count == 0:
        return
    if count * 8 < low.size:
        values[low] = branch(low)
    else:
        np.copyto(values, branch(...), where=low)


class MacenkoKernel:
    """Unmix on the source stains, rescale, remix on the target stains.

    Parameters
    ----------
    unmix : ndarray of shape (3, 2)
        Optical density to source concentrations, each column already scaled
        by the target's over the source's max concentration.
    remix : ndarray of shape (2, 3)
        Concentrations to target optical density (the target's stains).
    io : float
        Background intensity: optical density is ``ln(io) - ln(clip(v, 1,
        io))``, so a uint8 value ``v`` is one ``log``.
    """

    dtype = np.float32

    def __init__(self, unmix, remix, io):
        unmix = np.asarray(unmix, dtype=np.float64)
        self._log_io = np.float32(np.log(io))
        self._io = float(io)
        self._from_log = (-unmix.T).astype(np.float32)
        self._offset = (np.log(io) * unmix.sum(axis=0))[:, None].astype(np.float32)
        remix = np.asarray(remix, dtype=np.float64)
        self._remix = (-remix.T).astype(np.float32)
        # With non-negative stains the exponent never exceeds ln(io); a
        # hand-made negative stain could overflow exp without a clip.
        self._needs_clip = bool(np.any(remix < 0))

    def __call__(self, b):
        log_rgb = b.a
        np.clip(b.rgb, 1, self._io, out=log_rgb)
        np.log(log_rgb, out=log_rgb)
        concentrations = b.b[:2]
        np.matmul(self._from_log, log_rgb, out=concentrations)
        concentrations += self._offset
        np.maximum(concentrations, b.zeros[:2], out=concentrations)
        np.matmul(self._remix, concentrations, out=b.out)
        b.out += self._log_io
        if self._needs_clip:
            np.clip(b.out, -100, self._log_io, out=b.out)
        np.exp(b.out, out=b.out)


class ReinhardKernel:
    """Match each CIE Lab channel's mean and standard deviation.

    Parameters
    ----------
    source_mean, source_std, target_mean, target_std : ndarray of shape (3,)
        Lab statistics of the slide's and of the target's tissue.
    """

    def __init__(self, source_mean, source_std, target_mean, target_std):
        scale = np.asarray(target_std, float) / np.asarray(source_std, float)
        shift = np.asarray(target_mean, float) - scale * np.asarray(source_mean, float)
        matrix, offset = _lab_affine_in_f(scale, shift)
        stretch = max(np.max(scale), 1 / np.min(scale))
        self.dtype = np.float32 if stretch <= _FLOAT32_MAX_STRETCH else np.float64
        self._decode = _SRGB_LINEAR.astype(self.dtype)
        self._to_f = (_XYZ_FROM_RGB / _WHITE[:, None]).astype(self.dtype)
        self._lab_map = matrix.astype(self.dtype)
        self._lab_offset = offset[:, None].astype(self.dtype)
        self._from_f = (np.linalg.inv(_XYZ_FROM_RGB) * _WHITE).astype(self.dtype)

    def __call__(self, b):
        f, g = b.a, b.b
        np.take(self._decode, b.pixels, out=g)
        np.matmul(self._to_f, g, out=f)  # XYZ / white
        np.cbrt(f, out=g)
        _patch(g, f <= _LAB_T0, lambda low: _LAB_SLOPE * f[low] + _LAB_OFFSET)
        np.matmul(self._lab_map, g, out=f)
        f += self._lab_offset
        # scikit-image clips negative z (colours beyond the gamut) to 0.
        np.maximum(f[2], b.zeros[2], out=f[2])
        np.multiply(f, f, out=g)
        g *= f
        _patch(g, f <= _LAB_F0, lambda low: (f[low] - _LAB_OFFSET) / _LAB_SLOPE)
        np.matmul(self._from_f, g, out=f)  # linear RGB
        _srgb_encode(f, b)


def _srgb_encode(linear, b):
    """``b.out = 255 * sRGB(clip(linear, 0, 1))``; ``linear`` is overwritten."""
    np.maximum(linear, b.zeros, out=linear)
    np.minimum(linear, b.ones, out=linear)
    with np.errstate(divide="ignore"):
        np.log(linear, out=b.out)
    b.out *= b.out.dtype.type(1 / 2.4)
    np.exp(b.out, out=b.out)
    b.out *= b.out.dtype.type(255 * 1.055)
    b.out -= b.out.dtype.type(255 * 0.055)
    _patch(b.out, linear <= _SRGB_T0, lambda low: linear[low] * (255 * 12.92))


def _lab_affine_in_f(scale, shift):
    """The map ``f -> A f + c`` on ``f = cbrt(XYZ / white)`` that applies
    ``lab -> scale * lab + shift`` to ``L = 116 f_y - 16``,
    ``a = 500 (f_x - f_y)``, ``b = 200 (f_y - f_z)``."""
    # lab = P f + q, and f = P^-1 (lab - q).
    project = np.array([[0, 116, 0], [500, -500, 0], [0, 200, -200]], float)
    lab_offset = np.array([-16.0, 0.0, 0.0])
    inverse = np.linalg.inv(project)
    matrix = inverse @ (scale[:, None] * project)
    offset = inverse @ (scale * lab_offset + shift - lab_offset)
    return matrix, offset
