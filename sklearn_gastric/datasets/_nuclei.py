"""Nuclei of the synthetic tissue, stamped as soft ellipses on a padded
canvas of haematoxylin (max-composited)."""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CARCINOMA_NUCLEI",
    "FIBROBLASTS",
    "GLAND_NUCLEI",
    "HGIN_NUCLEI",
    "LGIN_NUCLEI",
    "LYMPHOCYTES",
    "OrientedNuclei",
    "RandomNuclei",
    "new_nucleus_canvas",
    "nucleus_view",
    "paste_nuclei",
    "stamp_nuclei",
    "wobble",
]

# A nucleus is stamped in a square of half side ceil(max axis) + 1; the
# canvas of nuclei is padded so that every stamp fits without clipping.
_MAX_NUCLEUS_HALF = 16
_PAD = 2 * _MAX_NUCLEUS_HALF + 2
_STAMP_CHUNK = 2_000_000


def new_nucleus_canvas(shape):
    """An empty canvas for an image of ``shape``, padded on every side."""
    return np.zeros((shape[0] + 2 * _PAD, shape[1] + 2 * _PAD), dtype=np.float32)


def nucleus_view(canvas):
    """The part of a canvas over the image."""
    return canvas[_PAD:-_PAD, _PAD:-_PAD]


def paste_nuclei(canvas, local, rows, cols, sub, *, spill=False):
    """Paste the canvas ``local`` of the box ``rows, cols`` into ``canvas``
    inside the box's mask ``sub``; with ``spill``, its nuclei also darken the
    canvas around the mask."""
    pad = 2 * _PAD
    target = canvas[rows.start : rows.stop + pad, cols.start : cols.stop + pad]
    if spill:
        np.maximum(target, local, out=target)
    nucleus_view(target)[sub] = nucleus_view(local)[sub]


def stamp_nuclei(
    rng, canvas, ys, xs, axis_a, axis_b, angle, darkness, *, irregular=0.0, grain=0.15
):
    """Stamp soft elliptical nuclei (max-composited) on a padded canvas.

    Nuclei of similar size are stamped together, fully vectorised; those whose
    centre lies farther than the padding outside the image are dropped.
    """
    height = canvas.shape[0] - 2 * _PAD
    width = canvas.shape[1] - 2 * _PAD
    n = np.size(ys)
    ys, xs, axis_a, axis_b, angle, darkness = (
        np.broadcast_to(np.asarray(v, dtype=np.float32), (n,)).copy()
        for v in (ys, xs, axis_a, axis_b, angle, darkness)
    )
    axis_a = np.minimum(axis_a, _MAX_NUCLEUS_HALF - 2)
    axis_b = np.minimum(axis_b, axis_a)
    margin = _PAD - _MAX_NUCLEUS_HALF
    keep = (ys > -margin) & (ys < height + margin) & (xs > -margin)
    keep &= xs < width + margin
    ys, xs, axis_a, axis_b, angle, darkness = (
        v[keep] for v in (ys, xs, axis_a, axis_b, angle, darkness)
    )
    if ys.size == 0:
        return
    phase = rng.uniform(0, 2 * np.pi, size=(ys.size, 2)).astype(np.float32)
    halves = np.ceil(axis_a).astype(int) + 1
    flat = canvas.ravel()
    stride = canvas.shape[1]
    for half in np.unique(halves):
        members = np.flatnonzero(halves == half)
        side = 2 * half + 1
        offsets = np.arange(-half, half + 1, dtype=np.float32)
        steps = np.arange(-half, half + 1)
        window = steps[:, None] * stride + steps[None, :]
        chunk = max(1, _STAMP_CHUNK // (side * side))
        for start in range(0, members.size, chunk):
            sel = members[start : start + chunk]
            iy = np.floor(ys[sel]).astype(np.intp)
            ix = np.floor(xs[sel]).astype(np.intp)
            dy = offsets[None, :, None] - (ys[sel] - iy)[:, None, None]
            dx = offsets[None, None, :] - (xs[sel] - ix)[:, None, None]
            cos = np.cos(angle[sel])[:, None, None]
            sin = np.sin(angle[sel])[:, None, None]
            u = dx * cos + dy * sin
            v = dy * cos - dx * sin
            a = axis_a[sel][:, None, None]
            b = axis_b[sel][:, None, None]
            radius = np.sqrt((u / a) ** 2 + (v / b) ** 2)
            if irregular:
                radius *= 1 + wobble(
                    u,
                    v,
                    phase[sel].T[:, :, None, None],
                    irregular / 1.6,
                    0.6 * irregular / 1.6,
                )
            value = np.clip((1.0 - radius) * b / 1.2, 0.0, 1.0)
            texture = 1.0 - grain + 2 * grain * rng.random(value.shape, np.float32)
            value *= texture * darkness[sel][:, None, None]
            inside = value > 0
            origin = (iy + _PAD) * stride + ix + _PAD
            index = origin[:, None, None] + window
            np.maximum.at(flat, index[inside], value[inside])


def wobble(u, v, phase, amp2, amp3):
    """``amp2 cos(2 t + p0) + amp3 cos(3 t + p1)`` with ``t`` the polar angle
    of ``(u, v)``, computed without ``arctan2``."""
    norm = np.sqrt(u * u + v * v) + np.float32(1e-6)
    c, s = u / norm, v / norm
    cos2, sin2 = c * c - s * s, 2 * c * s
    cos3, sin3 = c * (4 * c * c - 3), s * (3 - 4 * s * s)
    p0, p1 = phase[0], phase[1]
    return amp2 * (cos2 * np.cos(p0) - sin2 * np.sin(p0)) + amp3 * (
        cos3 * np.cos(p1) - sin3 * np.sin(p1)
    )


@dataclass(frozen=True)
class OrientedNuclei:
    """Nuclei along given angles, with semi-axes and darkness drawn uniformly
    from the ranges ``length``, ``width`` and ``darkness``, and the angles
    jittered by a normal of ``angle_jitter`` radians (if any)."""

    length: tuple
    width: tuple
    darkness: tuple
    angle_jitter: float = 0.0

    def stamp(self, rng, canvas, ys, xs, angle):
        n = np.size(ys)
        axis_a = rng.uniform(*self.length, n)
        axis_b = rng.uniform(*self.width, n)
        if self.angle_jitter:
            angle = angle + rng.normal(0, self.angle_jitter, n)
        darkness = rng.uniform(*self.darkness, n)
        stamp_nuclei(rng, canvas, ys, xs, axis_a, axis_b, angle, darkness)


@dataclass(frozen=True)
class RandomNuclei:
    """Randomly oriented nuclei of semi-axes ``s`` and ``s * r``, with ``s``,
    ``r`` and the darkness drawn uniformly from the ranges ``size``,
    ``ratio`` and ``darkness``; ``irregular`` and ``grain`` as in
    :func:`stamp_nuclei`."""

    size: tuple
    ratio: tuple
    darkness: tuple
    irregular: float = 0.0
    grain: float = 0.15

    def stamp(self, rng, canvas, ys, xs):
        n = np.size(ys)
        first = rng.uniform(*self.size, n)
        second = first * rng.uniform(*self.ratio, n)
        angle = rng.uniform(0, np.pi, n)
        darkness = rng.uniform(*self.darkness, n)
        axis_a, axis_b = np.maximum(first, second), np.minimum(first, second)
        stamp_nuclei(
            rng,
            canvas,
            ys,
            xs,
            axis_a,
            axis_b,
            angle,
            darkness,
            irregular=self.irregular,
            grain=self.grain,
        )


# The nuclei of each compartment (lengths in pixels at 0.5 microns per pixel).
GLAND_NUCLEI = OrientedNuclei((5.0, 7.0), (3.0, 4.0), (0.85, 1.1))
FIBROBLASTS = OrientedNuclei((6.0, 9.0), (1.8, 2.6), (0.8, 1.1), angle_jitter=0.2)
LYMPHOCYTES = RandomNuclei((3.6, 4.6), (1.0, 1.15), (1.6, 2.1), grain=0.1)
LGIN_NUCLEI = OrientedNuclei((6.0, 8.0), (2.3, 3.0), (1.15, 1.45))
HGIN_NUCLEI = RandomNuclei(
    (6.0, 10.0), (0.65, 1.0), (1.35, 2.0), irregular=0.18, grain=0.3
)
CARCINOMA_NUCLEI = RandomNuclei(
    (6.5, 10.5), (0.6, 1.0), (1.3, 1.9), irregular=0.22, grain=0.3
)
