"""Beer-Lambert rendering of synthetic H&E gastric tissue (private engine).

Everything is drawn as two stain concentration maps, haematoxylin ``c_h`` and
eosin ``c_e``, turned into RGB by ``I0 * exp(-(c_h * h + c_e * e))``. Lengths
are pixels at 0.5 microns per pixel (a 20x scan). The slide and the patch
generators both call :func:`render`, so lesions look the same in both.
"""

import numpy as np
from scipy import ndimage as ndi

# Concentrations below are relative; these scale them to the optical
# densities of real H&E (measured on the CMU slide and the H&E target: tissue
# OD medians about 0.4 / 1.0 / 0.55 in R / G / B, and 85-91 % of tissue
# pixels absorbing at least 0.15 in every channel).
_EOSIN_SCALE = 2.2
# Nuclei push the eosin of the tissue around them out: the darkest are
# almost pure haematoxylin, as in real tissue; and they are the darkest
# structures (real nuclei: total optical density about 3-4).
_NUCLEUS_EOSIN_DISPLACEMENT = 0.9
_NUCLEUS_SCALE = 1.6

# A nucleus is stamped in a square of half side ceil(max axis) + 1; the
# canvas of nuclei is padded so that every stamp fits without clipping.
_MAX_NUCLEUS_HALF = 16
_PAD = 2 * _MAX_NUCLEUS_HALF + 2
_STAMP_CHUNK = 2_000_000


# -- random fields -----------------------------------------------------------


def smooth_noise(rng, shape, sigma):
    """Gaussian random field, zero mean and unit variance, correlation ``sigma``.

    Drawn on a grid coarser by ``sigma // 4`` and upsampled linearly, so that
    large correlation lengths cost little on large images.
    """
    small, factor = coarse_noise(rng, shape, sigma)
    if factor == 1:
        return np.ascontiguousarray(small[: shape[0], : shape[1]])
    return _upsample(small, factor, shape)


def coarse_noise(rng, shape, sigma):
    """The coarse grid of :func:`smooth_noise` and its factor, not upsampled;
    read it at points with :func:`sample_coarse`."""
    height, width = shape
    factor = max(1, int(sigma // 4))
    small_shape = (-(-height // factor) + 2, -(-width // factor) + 2)
    small = rng.standard_normal(small_shape, dtype=np.float32)
    small = ndi.gaussian_filter(small, sigma / factor, mode="wrap")
    small -= small.mean()
    small /= small.std() + 1e-12
    return small, factor


def sample_coarse(small, factor, ys, xs):
    """Values of a coarse field at image points (nearest grid point)."""
    return _sample(small, np.asarray(ys) / factor, np.asarray(xs) / factor)


def _upsample(small, factor, shape):
    """Linear interpolation of ``small`` by an integer ``factor``, cropped.

    Output pixel ``q * factor + p`` mixes cells ``q`` and ``q + 1`` with the
    same weight for every ``q``, so each axis takes ``factor`` strided array
    operations instead of a gather.
    """
    height, width = shape
    n_rows, n_cols = -(-height // factor), -(-width // factor)
    weights = (np.arange(factor, dtype=np.float32) + 0.5) / factor
    rows = np.empty((n_rows, factor, small.shape[1]), dtype=np.float32)
    for p, w in enumerate(weights):
        np.multiply(small[:n_rows], 1 - w, out=rows[:, p])
        rows[:, p] += w * small[1 : n_rows + 1]
    rows = rows.reshape(n_rows * factor, -1)[:height]
    out = np.empty((height, n_cols, factor), dtype=np.float32)
    for p, w in enumerate(weights):
        np.multiply(rows[:, :n_cols], 1 - w, out=out[:, :, p])
        out[:, :, p] += w * rows[:, 1 : n_cols + 1]
    return np.ascontiguousarray(out.reshape(height, n_cols * factor)[:, :width])


def _quantile_threshold(field, keep_fraction):
    """The value above which ``keep_fraction`` of ``field`` lies."""
    step = max(1, int(np.sqrt(field.size / 250_000)))
    sample = field[::step, ::step].ravel()
    return np.quantile(sample, 1.0 - keep_fraction)


def tissue_mask(rng, shape, coverage):
    """An irregular piece of tissue covering about ``coverage`` of the image."""
    height, width = shape
    field = smooth_noise(rng, shape, min(shape) / 7)
    field += 0.12 * smooth_noise(rng, shape, 10)
    # A bump in the middle keeps the tissue mostly away from the borders.
    yy = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    field -= 1.2 * (yy[:, None] ** 2 + xx[None, :] ** 2)
    mask = field > _quantile_threshold(field, coverage)
    return mask


def jittered_grid(rng, bounds, spacing, jitter):
    """Points on a square grid of ``spacing`` with a random offset and jitter.

    ``bounds`` is ``(y0, x0, y1, x1)``, possibly beyond the image.
    """
    y0, x0, y1, x1 = bounds
    offset = rng.uniform(0, spacing, size=2)
    ys = np.arange(y0 + offset[0], y1, spacing)
    xs = np.arange(x0 + offset[1], x1, spacing)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    gy = gy.ravel() + rng.uniform(-jitter, jitter, gy.size) * spacing
    gx = gx.ravel() + rng.uniform(-jitter, jitter, gx.size) * spacing
    return gy, gx


def _inside(mask, ys, xs):
    """Whether the points fall on True pixels of ``mask`` (False outside)."""
    iy = np.floor(ys).astype(np.intp)
    ix = np.floor(xs).astype(np.intp)
    ok = (iy >= 0) & (iy < mask.shape[0]) & (ix >= 0) & (ix < mask.shape[1])
    result = np.zeros(ys.shape, dtype=bool)
    result[ok] = mask[iy[ok], ix[ok]]
    return result


# -- regions -----------------------------------------------------------------


def pick_centre(rng, allowed, radius):
    """A pixel of ``allowed`` at least ``radius`` (or as far as possible)
    from its border; ``None`` when nothing is allowed."""
    step = max(1, int(radius // 6))
    coarse = allowed[::step, ::step]
    if not coarse.any():
        ys, xs = np.nonzero(allowed)
        if ys.size == 0:
            return None
        k = rng.integers(ys.size)
        return int(ys[k]), int(xs[k])
    distance = ndi.distance_transform_edt(np.pad(coarse, 1))[1:-1, 1:-1] * step
    far = distance >= min(radius, 0.8 * distance.max())
    ys, xs = np.nonzero(far)
    k = rng.integers(ys.size)
    y = min(int(ys[k]) * step + int(rng.integers(step)), allowed.shape[0] - 1)
    x = min(int(xs[k]) * step + int(rng.integers(step)), allowed.shape[1] - 1)
    return y, x


def grow_region(rng, allowed, area, centre):
    """An irregular blob of exactly ``area`` allowed pixels around ``centre``.

    Returns ``(rows, cols, sub)``: slices of the image and the blob's mask
    inside them. Fewer pixels are returned only if the image has fewer
    allowed pixels.
    """
    height, width = allowed.shape
    area = int(area)
    radius = np.sqrt(area / np.pi)
    aspect = rng.uniform(1.0, 1.8)
    axis_a, axis_b = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    angle = rng.uniform(0, np.pi)
    cy, cx = centre
    half = int(2.2 * axis_a) + 8
    while True:
        rows = slice(max(cy - half, 0), min(cy + half + 1, height))
        cols = slice(max(cx - half, 0), min(cx + half + 1, width))
        sub_allowed = allowed[rows, cols]
        available = int(np.count_nonzero(sub_allowed))
        covers_all = (
            rows.stop - rows.start == height and cols.stop - cols.start == width
        )
        if available >= 2 * area or covers_all:
            break
        half *= 2
    yy = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] - cy
    xx = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] - cx
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    field = np.sqrt((u / axis_a) ** 2 + (v / axis_b) ** 2)
    field += 0.45 * smooth_noise(rng, field.shape, max(radius / 3, 4.0))
    field[~sub_allowed] = np.inf
    count = min(area, available)
    sub = np.zeros(field.shape, dtype=bool)
    if count > 0:
        chosen = np.argpartition(field.ravel(), count - 1)[:count]
        sub.ravel()[chosen] = True
    return rows, cols, sub


def place_foci(rng, allowed, total_area, n_foci):
    """``n_foci`` disjoint blobs with ``total_area`` pixels in all."""
    shares = rng.dirichlet(np.full(n_foci, 3.0))
    areas = np.floor(shares * total_area).astype(int)
    areas[0] += int(total_area) - int(areas.sum())
    allowed = allowed.copy()
    foci = []
    for area in areas:
        if area <= 0:
            continue
        centre = pick_centre(rng, allowed, np.sqrt(area / np.pi))
        if centre is None:
            break
        rows, cols, sub = grow_region(rng, allowed, area, centre)
        allowed[rows, cols] &= ~sub
        foci.append((rows, cols, sub))
    return foci


# -- nuclei ------------------------------------------------------------------


def new_nucleus_canvas(shape):
    return np.zeros((shape[0] + 2 * _PAD, shape[1] + 2 * _PAD), dtype=np.float32)


def nucleus_view(canvas):
    return canvas[_PAD:-_PAD, _PAD:-_PAD]


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
                radius *= 1 + _wobble(
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


def _wobble(u, v, phase, amp2, amp3):
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


# -- glands ------------------------------------------------------------------


def make_glands(rng, bounds, region, *, spacing, radius, lumen, keep=None):
    """Gland parameters on a jittered grid, centred on ``region`` pixels.

    ``region`` is None (keep every gland) or a mask of the image; a centre
    outside the image counts as on the nearest border pixel, so that glands
    centred just outside still show their visible part.

    Returns a dict of arrays: centre ``y``, ``x``, semi-axes ``a``, ``b``,
    ``angle`` and ``lumen`` (the lumen's radius as a fraction of the gland's).
    """
    ys, xs = jittered_grid(rng, bounds, spacing, 0.18)
    n = ys.size
    a = rng.uniform(*radius, n)
    b = a / rng.uniform(1.0, 1.5, n)
    glands = {
        "y": ys,
        "x": xs,
        "a": a,
        "b": b,
        "angle": rng.uniform(0, np.pi, n),
        "lumen": rng.uniform(*lumen, n),
        "phase": rng.uniform(0, 2 * np.pi, (n, 2)),
    }
    selected = np.ones(n, dtype=bool)
    if region is not None:
        selected = _sample(region, ys, xs)
    if keep is not None:
        selected &= rng.random(n) < keep(ys, xs)
    return {key: value[selected] for key, value in glands.items()}


def paint_glands(label, glands):
    """Write epithelium (1) and lumen (2) of every gland into ``label``."""
    height, width = label.shape
    for i in range(glands["y"].size):
        cy, cx, a, b = (glands[k][i] for k in ("y", "x", "a", "b"))
        half = int(np.ceil(a * 1.15)) + 2
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, height)
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        cos, sin = np.cos(glands["angle"][i]), np.sin(glands["angle"][i])
        u = dx * cos + dy * sin
        v = dy * cos - dx * sin
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        rho *= 1 + _wobble(u, v, glands["phase"][i], 0.07, 0.05)
        box = label[y0:y1, x0:x1]
        box[(rho < 1) & (box == 0)] = 1
        box[rho < glands["lumen"][i]] = 2


def gland_nuclei(rng, glands, *, spacing, depth):
    """Nuclei around each gland's lumen, long axis radial.

    ``depth`` is the range of radial positions (fractions of the gland's
    radius, measured from the lumen to the outer border); a narrow range near
    1 gives one basal row, a wide range gives crowded pseudostratified nuclei.
    """
    mean_radius = 0.5 * (glands["a"] + glands["b"])
    counts = np.maximum(np.round(2 * np.pi * mean_radius / spacing), 0).astype(int)
    owner = np.repeat(np.arange(counts.size), counts)
    if owner.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    position = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    polar = 2 * np.pi * (position + rng.uniform(-0.3, 0.3, owner.size))
    polar /= counts[owner]
    polar += glands["phase"][owner, 0]
    lumen = glands["lumen"][owner]
    t = rng.uniform(*depth, owner.size)
    rho = lumen + t * (1 - lumen)
    u = glands["a"][owner] * rho * np.cos(polar)
    v = glands["b"][owner] * rho * np.sin(polar)
    angle = glands["angle"][owner]
    ys = glands["y"][owner] + u * np.sin(angle) + v * np.cos(angle)
    xs = glands["x"][owner] + u * np.cos(angle) - v * np.sin(angle)
    radial = angle + np.arctan2(v * glands["a"][owner], u * glands["b"][owner])
    return ys, xs, radial + rng.normal(0, 0.15, owner.size)


# -- tissue compartments -----------------------------------------------------


def _stroma(rng, shape):
    """Eosin of fibrous stroma, fibres along two orientations blended by a
    smooth weight; drawn at half resolution. Returns the eosin map and the
    half-resolution weight of horizontal fibres."""
    half_shape = (-(-shape[0] // 2), -(-shape[1] // 2))
    white = rng.standard_normal(half_shape, dtype=np.float32)
    along_x = ndi.gaussian_filter(white, (0.8, 3.0))
    along_y = ndi.gaussian_filter(white, (3.0, 0.8))
    weight = 1 / (1 + np.exp(-3 * smooth_noise(rng, half_shape, 60)))
    fibres = weight * along_x + (1 - weight) * along_y
    fibres /= fibres.std() + 1e-12
    half = 0.46 + 0.07 * fibres + 0.04 * smooth_noise(rng, half_shape, 40)
    c_e = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    return np.ascontiguousarray(c_e), weight


def _scatter(rng, region, density):
    """Uniform random points on ``region`` with ``density`` per pixel."""
    height, width = region.shape
    n = rng.poisson(density * height * width)
    ys = rng.uniform(0, height, n)
    xs = rng.uniform(0, width, n)
    keep = _inside(region, ys, xs)
    return ys[keep], xs[keep]


def _stamp_lymphocytes(rng, nuc, ys, xs):
    n = ys.size
    radius = rng.uniform(3.6, 4.6, n)
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        radius * rng.uniform(1.0, 1.15, n),
        radius,
        rng.uniform(0, np.pi, n),
        rng.uniform(1.6, 2.1, n),
        grain=0.1,
    )


def _render_lymphoid(rng, region):
    """A lymphoid aggregate: small round very dark nuclei packed densely."""
    shape = region.shape
    c_h = np.full(shape, 0.16, dtype=np.float32)
    c_e = np.full(shape, 0.22, dtype=np.float32)
    nuc = new_nucleus_canvas(shape)
    ys, xs = jittered_grid(rng, (-8, -8, shape[0] + 8, shape[1] + 8), 9.5, 0.3)
    keep = (rng.random(ys.size) > 0.12) & _inside(region, ys, xs)
    _stamp_lymphocytes(rng, nuc, ys[keep], xs[keep])
    return c_h, c_e, nuc


def _render_lgin(rng, region):
    """Low-grade dysplasia: crowded glands, elongated pseudostratified nuclei,
    basophilic cytoplasm without mucin."""
    shape = region.shape
    c_h = np.full(shape, 0.12, dtype=np.float32)
    c_e = np.full(shape, 0.40, dtype=np.float32)
    label = np.zeros(shape, dtype=np.int8)
    bounds = (-30, -30, shape[0] + 30, shape[1] + 30)
    glands = make_glands(
        rng, bounds, None, spacing=52, radius=(26, 34), lumen=(0.38, 0.5)
    )
    paint_glands(label, glands)
    epithelium, lumen = label == 1, label == 2
    c_h[epithelium], c_e[epithelium] = 0.30, 0.30
    c_h[lumen], c_e[lumen] = 0.02, 0.05
    nuc = new_nucleus_canvas(shape)
    ys, xs, angle = gland_nuclei(rng, glands, spacing=3.6, depth=(0.3, 0.8))
    n = ys.size
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        rng.uniform(6.0, 8.0, n),
        rng.uniform(2.3, 3.0, n),
        angle,
        rng.uniform(1.15, 1.45, n),
    )
    return c_h, c_e, nuc


def _render_hgin(rng, region):
    """High-grade dysplasia: gland structure lost, enlarged dark pleomorphic
    nuclei packed densely, a few remnant slit lumens."""
    shape = region.shape
    c_h = np.full(shape, 0.32, dtype=np.float32)
    c_e = np.full(shape, 0.30, dtype=np.float32)
    slits = smooth_noise(rng, shape, 7) > 2.0
    c_h[slits], c_e[slits] = 0.02, 0.05
    nuc = new_nucleus_canvas(shape)
    ys, xs = jittered_grid(rng, (-10, -10, shape[0] + 10, shape[1] + 10), 15, 0.4)
    keep = ~_inside(slits, ys, xs)
    ys, xs = ys[keep], xs[keep]
    n = ys.size
    a = rng.uniform(6.0, 10.0, n)
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        a,
        a * rng.uniform(0.65, 1.0, n),
        rng.uniform(0, np.pi, n),
        rng.uniform(1.35, 2.0, n),
        irregular=0.18,
        grain=0.3,
    )
    return c_h, c_e, nuc


def _render_carcinoma(rng, region):
    """Invasive carcinoma: cords and clusters of atypical cells infiltrating a
    pale desmoplastic stroma."""
    shape = region.shape
    c_h = np.full(shape, 0.10, dtype=np.float32)
    c_e = 0.30 + 0.05 * smooth_noise(rng, shape, 6)
    cords = np.abs(smooth_noise(rng, shape, 14)) < 0.45
    cords |= smooth_noise(rng, shape, 9) > 1.3
    c_h[cords], c_e[cords] = 0.35, 0.28
    nuc = new_nucleus_canvas(shape)
    ys, xs = jittered_grid(rng, (0, 0, shape[0], shape[1]), 10, 0.4)
    keep = _inside(cords, ys, xs)
    ys, xs = ys[keep], xs[keep]
    n = ys.size
    a = rng.uniform(6.5, 10.5, n)
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        a,
        a * rng.uniform(0.6, 1.0, n),
        rng.uniform(0, np.pi, n),
        rng.uniform(1.3, 1.9, n),
        irregular=0.22,
        grain=0.3,
    )
    return c_h, c_e, nuc


LESION_RENDERERS = {
    "LGIN": _render_lgin,
    "HGIN": _render_hgin,
    "carcinoma": _render_carcinoma,
}


def _paste(rng, renderer, focus, c_h, c_e, nuc, *, soft=False):
    """Render a compartment in the focus' box and paste it inside the focus."""
    rows, cols, sub = focus
    local_h, local_e, local_nuc = renderer(rng, sub)
    c_h[rows, cols][sub] = local_h[sub]
    c_e[rows, cols][sub] = local_e[sub]
    target = nuc[rows.start : rows.stop + 2 * _PAD, cols.start : cols.stop + 2 * _PAD]
    inner = target[_PAD:-_PAD, _PAD:-_PAD]
    local_inner = nucleus_view(local_nuc)
    if soft:
        # Lymphocytes spill over the aggregate's border, as they do.
        np.maximum(target, local_nuc, out=target)
        inner[sub] = local_inner[sub]
    else:
        inner[sub] = local_inner[sub]


# -- the renderer ------------------------------------------------------------


def render(rng, shape, tissue, lesions, mimics, stains, *, gland_density=0.75):
    """Render an RGB uint8 image.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    tissue : bool ndarray of ``shape``
    lesions : list of (class name, (rows, cols, sub))
        Lesion foci; they replace the normal tissue inside ``sub``.
    mimics : list of (rows, cols, sub)
        Lymphoid aggregates (benign), pasted before the lesions.
    stains : dict from :func:`~sklearn_gastric.datasets._labs.sample_slide_stains`
    gland_density : float
        The mean fraction of the gland grid kept in normal mucosa.
    """
    height, width = shape
    c_e, fibre_weight = _stroma(rng, shape)
    # A haematoxylin counterstain that varies over the stroma, nearly absent
    # in places (where the tissue shows eosin alone).
    c_h = np.maximum(0.20 + 0.08 * smooth_noise(rng, shape, 25), 0).astype(np.float32)

    # Normal mucosa: foveolar glands with pale mucinous cytoplasm, their
    # density varying over the slide (gland-rich and gland-poor areas).
    density_field = coarse_noise(rng, shape, 300)
    logit = np.log(gland_density / (1 - gland_density))

    def keep(ys, xs):
        local = sample_coarse(*density_field, ys, xs)
        return 1 / (1 + np.exp(-(logit + 2.0 * local)))

    glands = make_glands(
        rng,
        (-45, -45, height + 45, width + 45),
        tissue,
        spacing=84,
        radius=(27, 40),
        lumen=(0.45, 0.6),
        keep=keep,
    )
    label = np.zeros(shape, dtype=np.int8)
    paint_glands(label, glands)
    epithelium, lumen = label == 1, label == 2
    c_h[epithelium] = 0.25
    c_e[epithelium] = 0.22
    c_h[lumen] = 0.0
    c_e[lumen] = 0.04

    nuc = new_nucleus_canvas(shape)
    ys, xs, angle = gland_nuclei(rng, glands, spacing=8.5, depth=(0.72, 0.85))
    n = ys.size
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        rng.uniform(5.0, 7.0, n),
        rng.uniform(3.0, 4.0, n),
        angle,
        rng.uniform(0.85, 1.1, n),
    )

    stroma = tissue & (label == 0)
    # Fibroblasts, elongated along the local fibre direction.
    ys, xs = _scatter(rng, stroma, 1 / 1800)
    n = ys.size
    along_x = _sample(fibre_weight, ys / 2, xs / 2) > 0.5
    stamp_nuclei(
        rng,
        nuc,
        ys,
        xs,
        rng.uniform(6.0, 9.0, n),
        rng.uniform(1.8, 2.6, n),
        np.where(along_x, 0.0, np.pi / 2) + rng.normal(0, 0.2, n),
        rng.uniform(0.8, 1.1, n),
    )
    # Inflammation: scattered lymphocytes, denser in some places.
    inflamed = rng.uniform(1 / 6000, 1 / 1200)
    ys, xs = _scatter(rng, stroma, inflamed * 2.5)
    hot = sample_coarse(*coarse_noise(rng, shape, 200), ys, xs)
    keep_inflamed = rng.random(ys.size) < 1 / (1 + np.exp(-2 * hot))
    _stamp_lymphocytes(rng, nuc, ys[keep_inflamed], xs[keep_inflamed])

    for focus in mimics:
        _paste(rng, _render_lymphoid, focus, c_h, c_e, nuc, soft=True)
    # Lesions are drawn last, so that the pixels outside their masks are
    # exactly those of the same slide rendered without them.
    grain = rng.standard_normal(shape, dtype=np.float32)
    for name, focus in lesions:
        _paste(rng, LESION_RENDERERS[name], focus, c_h, c_e, nuc)

    nuclei = nucleus_view(nuc)
    c_e *= 1 - _NUCLEUS_EOSIN_DISPLACEMENT * np.minimum(nuclei, 1.0)
    c_h += _NUCLEUS_SCALE * nuclei
    c_h *= tissue
    c_e *= tissue
    c_h *= stains["strength"][0]
    c_e *= stains["strength"][1] * _EOSIN_SCALE
    grain *= 1.5
    grain += 0.5  # rounds to nearest when cast to uint8
    image = np.empty((height, width, 3), dtype=np.uint8)
    h_vec, e_vec = stains["vectors"]
    for channel in range(3):
        optical_density = c_h * np.float32(h_vec[channel])
        optical_density += c_e * np.float32(e_vec[channel])
        np.exp(-optical_density, out=optical_density)
        optical_density *= np.float32(stains["I0"][channel])
        optical_density += grain
        np.clip(optical_density, 0, 255, out=optical_density)
        image[..., channel] = optical_density
    return image


def _sample(field, ys, xs):
    iy = np.clip(ys.astype(np.intp), 0, field.shape[0] - 1)
    ix = np.clip(xs.astype(np.intp), 0, field.shape[1] - 1)
    return field[iy, ix]
