"""Training augmentation: geometric on patch and mask alike, colour on the patch."""

from numbers import Real

import numpy as np
from scipy import ndimage
from skimage.color import hsv2rgb, rgb2hsv
from sklearn.utils import check_random_state

from ..utils._sklearn_compat import Interval, validate_params

__all__ = ["augment_patch"]

_JITTER = [Interval(Real, 0, 1, closed="both")]


@validate_params(
    {
        "patch": [np.ndarray],
        "mask": ["array-like"],
        "random_state": ["random_state"],
        "flip": ["boolean"],
        "rotate": ["boolean"],
        "stretch": [Interval(Real, 0, None, closed="left")],
        "brightness": _JITTER,
        "contrast": _JITTER,
        "saturation": _JITTER,
        "hue": _JITTER,
        "hed": _JITTER,
    },
    prefer_skip_nested_validation=True,
)
def augment_patch(
    patch,
    mask,
    *,
    random_state=None,
    flip=True,
    rotate=True,
    stretch=0.2,
    brightness=0.1,
    contrast=0.1,
    saturation=0.1,
    hue=0.05,
    hed=0.0,
):
    """Randomly augment one training patch and its mask.

    The patent's augmentation (flips, rotations, stretches, and brightness,
    saturation, hue and contrast jitter), and optionally stain augmentation
    in HED space (Tellez et al., 2019). Geometric changes are applied
    identically to the patch and the mask, so they stay aligned; colour
    changes touch the patch only. A rectangular patch is turned by half
    turns only, so that it keeps its shape.

    The random draws do not depend on which changes are enabled: with the
    same ``random_state``, disabling the colour jitter gives the same
    geometry.

    Parameters
    ----------
    patch : ndarray of shape (height, width, 3), dtype uint8
        RGB patch.
    mask : ndarray of shape (height, width)
        Lesion mask in [0, 1] (float or bool).
    random_state : int, RandomState instance or None, default=None
        Randomness of the draws.
    flip : bool, default=True
        Flip left-right and up-down, each with probability 1/2.
    rotate : bool, default=True
        Rotate by a multiple of 90 degrees drawn uniformly.
    stretch : float, default=0.2
        Scale each axis independently by a factor drawn log-uniformly in
        ``[1 / (1 + stretch), 1 + stretch]`` about the patch centre
        (bilinear, reflected borders); the size is unchanged. 0 disables it.
    brightness, contrast, saturation : float, default=0.1
        Multiply brightness, contrast (distance to the mean grey) and
        saturation (distance to the grey level) by a factor drawn uniformly
        in ``[1 - value, 1 + value]``. 0 disables it.
    hue : float, default=0.05
        Shift the hue by an amount drawn uniformly in ``[-hue, hue]`` (a full
        turn is 1). 0 disables it.
    hed : float, default=0.0
        Stain augmentation: the patch is unmixed into haematoxylin, eosin and
        DAB optical densities (scikit-image's ``hed_from_rgb``), each channel
        ``c`` becomes ``c * a + b`` with ``a`` uniform in
        ``[1 - hed, 1 + hed]`` and ``b`` uniform in ``[-hed, hed]`` times the
        channel's largest value, and the patch is mixed back. Tellez et al.
        (2019) call 0.05 "light" and 0.2 "strong". 0 disables it.

    Returns
    -------
    patch : ndarray of shape (height, width, 3), dtype uint8
        The augmented patch.
    mask : ndarray of shape (height, width), dtype float32
        The augmented mask, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.segmentation import augment_patch
    >>> patch = np.zeros((8, 8, 3), dtype=np.uint8)
    >>> mask = np.zeros((8, 8), dtype=np.float32)
    >>> patch[:2, :2], mask[:2, :2] = 255, 1.0
    >>> new_patch, new_mask = augment_patch(
    ...     patch, mask, random_state=0, stretch=0, brightness=0, contrast=0,
    ...     saturation=0, hue=0)
    >>> bool(np.array_equal(new_patch[..., 0] == 255, new_mask == 1))
    True
    """
    rng = check_random_state(random_state)
    # All draws happen whatever is enabled, so the geometry depends on the
    # seed only.
    flips = rng.random_sample(2) < 0.5
    n_turns = int(rng.randint(4))
    log_scales = rng.uniform(-1.0, 1.0, size=2) * np.log1p(stretch)
    factors = 1.0 + rng.uniform(-1.0, 1.0, size=3) * [brightness, contrast, saturation]
    hue_shift = rng.uniform(-1.0, 1.0) * hue
    # Drawn last, so that the draws above do not depend on it.
    hed_scales = 1.0 + rng.uniform(-1.0, 1.0, size=3) * hed
    hed_shifts = rng.uniform(-1.0, 1.0, size=3) * hed

    image = patch.astype(np.float32) / 255.0
    mask = np.asarray(mask, dtype=np.float32)
    if flip and flips[0]:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if flip and flips[1]:
        image, mask = image[::-1], mask[::-1]
    if image.shape[0] != image.shape[1]:
        # A quarter turn would swap a rectangle's sides, and the batch's
        # patches must keep one shape: half turns only.
        n_turns -= n_turns % 2
    if rotate and n_turns:
        image, mask = np.rot90(image, n_turns), np.rot90(mask, n_turns)
    if stretch > 0:
        image, mask = _stretch(image, mask, np.exp(log_scales))

    brightness_factor, contrast_factor, saturation_factor = factors
    if brightness:
        image = image * brightness_factor
    if contrast:
        grey_mean = _grey(image).mean()
        image = (image - grey_mean) * contrast_factor + grey_mean
    if saturation:
        grey = _grey(image)[..., None]
        image = (image - grey) * saturation_factor + grey
    image = np.clip(image, 0.0, 1.0)
    if hue:
        hsv = rgb2hsv(image)
        hsv[..., 0] = (hsv[..., 0] + hue_shift) % 1.0
        image = hsv2rgb(hsv)
    if hed:
        image = _hed_jitter(np.clip(image, 0.0, 1.0), hed_scales, hed_shifts)
    patch = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return patch, np.ascontiguousarray(np.clip(mask, 0.0, 1.0), dtype=np.float32)


def _hed_jitter(image, scales, shifts):
    """Tellez et al.'s HED augmentation of an RGB image in [0, 1].

    Unmixed with scikit-image's H&E-DAB matrices, but without the clipping
    of negative concentrations that :func:`skimage.color.rgb2hed` does, so
    that no jitter gives back the image exactly.
    """
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = -np.log(np.maximum(image, 1e-6))
    stains = od @ hed_from_rgb
    extent = np.abs(stains).reshape(-1, 3).max(axis=0)
    stains = stains * scales + shifts * extent
    return np.exp(-(stains @ rgb_from_hed)).astype(np.float32)


def _grey(image):
    return image @ np.array([0.299, 0.587, 0.114], dtype=image.dtype)


def _stretch(image, mask, scales):
    """Scale rows by ``scales[0]`` and columns by ``scales[1]`` about the centre."""
    height, width = mask.shape
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    inverse = 1.0 / scales
    offset = centre - inverse * centre
    mask = ndimage.affine_transform(
        mask, inverse, offset=offset, order=1, mode="reflect"
    )
    image = ndimage.affine_transform(
        image,
        np.append(inverse, 1.0),
        offset=np.append(offset, 0.0),
        order=1,
        mode="reflect",
    )
    return image, mask
