"""Laboratories' staining: StainProfile, make_stain_profile, and per-slide stains."""

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state

from ..utils._sklearn_compat import Interval, validate_params

__all__ = ["REFERENCE_LAB", "StainProfile", "make_stain_profile"]

# The reference lab's optical-density vectors: the mean of the Macenko
# estimates of the two real H&E images the project ships (the CMU slide and
# the TIAToolbox target), so the renders' colours are those of real scans.
_REFERENCE_H = (0.604, 0.707, 0.355)
_REFERENCE_E = (0.167, 0.876, 0.446)
# Labs differ from the reference by stain vectors rotated by up to this many
# degrees, stain intensities scaled within these bounds, and a glass tint.
_MAX_ROTATION_DEG = 15.0
_MIN_ROTATION_DEG = 3.0
_INTENSITY_RANGE = (0.6, 1.5)
_GLASS_BRIGHTNESS = (236.0, 250.0)
_GLASS_TINT = 6.0
# No lab has its two stains closer than this: the unmixing would be
# ill-conditioned, and no real H&E looks like that.
_MIN_STAIN_ANGLE_DEG = 20.0


def _unit(vector, name):
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"{name} must be 3 finite numbers (R, G, B); got {vector}.")
    if np.any(vector < 0) or np.linalg.norm(vector) == 0:
        raise ValueError(
            f"{name} is an optical-density vector: non-negative, not all zero; "
            f"got {vector.tolist()}."
        )
    return tuple(float(v) for v in vector / np.linalg.norm(vector))


@dataclass(frozen=True)
class StainProfile:
    """How one laboratory stains: its H and E vectors, intensities and glass.

    A rendered pixel is ``glass * exp(-(c_h * intensities[0] * haematoxylin
    + c_e * intensities[1] * eosin))`` (Beer-Lambert), with ``c_h`` and
    ``c_e`` the tissue's stain concentrations. The slides of one lab jitter
    around its profile (``stain_jitter`` of the generators); slides of
    another lab jitter around another profile.

    Parameters
    ----------
    haematoxylin : (float, float, float)
        Optical-density direction of haematoxylin in (R, G, B); scaled to
        unit length.
    eosin : (float, float, float)
        Optical-density direction of eosin; scaled to unit length.
    intensities : (float, float), default=(1.0, 1.0)
        How strongly the lab stains with haematoxylin and with eosin.
    glass : (float, float, float), default=(245.0, 245.0, 245.0)
        RGB of bare glass under the scanner's light (a tint when the
        channels differ).
    name : str, default="lab"
        For messages and reports.

    Attributes
    ----------
    stain_matrix : ndarray of shape (2, 3)
        The two unit vectors, haematoxylin first.

    See Also
    --------
    make_stain_profile : A random lab.
    make_gastric_slides : Renders slides of a lab (``lab=``).

    Examples
    --------
    >>> from sklearn_gastric.datasets import StainProfile
    >>> lab = StainProfile((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), name="Ruifrok")
    >>> lab.stain_matrix.round(3)
    array([[0.651, 0.701, 0.29 ],
           [0.07 , 0.991, 0.11 ]])
    """

    haematoxylin: tuple
    eosin: tuple
    intensities: tuple = (1.0, 1.0)
    glass: tuple = (245.0, 245.0, 245.0)
    name: str = field(default="lab", compare=False)

    def __post_init__(self):
        h = _unit(self.haematoxylin, "haematoxylin")
        e = _unit(self.eosin, "eosin")
        angle = math.degrees(math.acos(min(1.0, abs(float(np.dot(h, e))))))
        if angle < _MIN_STAIN_ANGLE_DEG:
            raise ValueError(
                f"haematoxylin and eosin are {angle:.1f} degrees apart; a lab's "
                f"stains are at least {_MIN_STAIN_ANGLE_DEG:g} degrees apart."
            )
        intensities = np.asarray(self.intensities, dtype=np.float64)
        if intensities.shape != (2,) or not np.all(
            np.isfinite(intensities) & (intensities > 0)
        ):
            raise ValueError(
                f"intensities must be 2 positive numbers; got {self.intensities!r}."
            )
        glass = np.asarray(self.glass, dtype=np.float64)
        if glass.shape != (3,) or not np.all((glass > 0) & (glass <= 255)):
            raise ValueError(
                f"glass must be 3 numbers in (0, 255]; got {self.glass!r}."
            )
        object.__setattr__(self, "haematoxylin", h)
        object.__setattr__(self, "eosin", e)
        object.__setattr__(self, "intensities", tuple(map(float, intensities)))
        object.__setattr__(self, "glass", tuple(map(float, glass)))

    @property
    def stain_matrix(self):
        return np.array([self.haematoxylin, self.eosin])


REFERENCE_LAB = StainProfile(_REFERENCE_H, _REFERENCE_E, name="reference")


def _plausible(haematoxylin, eosin):
    """Whether the stains look like H&E: haematoxylin absorbing red and
    green alike (blue to purple, never green), eosin absorbing green most
    (pink), and the two far enough apart to unmix."""
    red, green = haematoxylin[0], haematoxylin[1]
    cosine = float(np.clip(haematoxylin @ eosin, -1, 1))
    return (
        0.6 * red <= green <= red / 0.6
        and eosin[1] == eosin.max()
        and math.degrees(math.acos(cosine)) >= _MIN_STAIN_ANGLE_DEG
    )


def _rotate(vector, degrees, rng):
    """``vector`` turned by ``degrees`` towards a random perpendicular
    direction, kept non-negative (the turn may then come out smaller)."""
    vector = np.asarray(vector, dtype=np.float64)
    axis = rng.standard_normal(3)
    axis -= (axis @ vector) * vector
    axis /= np.linalg.norm(axis)
    theta = math.radians(degrees)
    turned = math.cos(theta) * vector + math.sin(theta) * axis
    turned = np.clip(turned, 1e-3, None)
    return turned / np.linalg.norm(turned)


@validate_params(
    {
        "random_state": ["random_state"],
        "spread": [Interval(numbers.Real, 0, None, closed="left")],
        "name": [str, None],
    },
    prefer_skip_nested_validation=True,
)
def make_stain_profile(random_state=None, *, spread=1.0, name=None):
    """A random laboratory: the reference stains rotated, rescaled and tinted.

    Real labs differ by their dyes, staining times and scanners. Here each
    stain vector of :data:`REFERENCE_LAB` is rotated by a random angle
    between 3 and 15 degrees (times ``spread``) in a random direction that
    keeps it plausible (haematoxylin blue to purple, eosin pink), each
    stain's intensity scaled by a factor log-uniform in [0.6, 1.5] (its
    logarithm times ``spread``), and the glass given a brightness in
    [236, 250] and a tint of up to 6 grey levels per channel.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        The same seed gives the same lab.
    spread : float, default=1.0
        How far from the reference: 0 gives the reference stains, 1 the
        ranges above.
    name : str, default=None
        The profile's name; ``"lab-<seed>"`` for an integer seed.

    Returns
    -------
    profile : StainProfile

    Examples
    --------
    >>> from sklearn_gastric.datasets import REFERENCE_LAB, make_stain_profile
    >>> import numpy as np
    >>> lab = make_stain_profile(0)
    >>> lab.name
    'lab-0'
    >>> h = np.dot(lab.haematoxylin, REFERENCE_LAB.haematoxylin)
    >>> bool(3 <= np.degrees(np.arccos(min(h, 1))) <= 15)
    True
    """
    seed_name = (
        f"lab-{random_state}" if isinstance(random_state, numbers.Integral) else "lab"
    )
    rng = check_random_state(random_state)
    spread = float(spread)
    for _ in range(100):
        vectors = [
            _rotate(
                base,
                spread * rng.uniform(_MIN_ROTATION_DEG, _MAX_ROTATION_DEG),
                rng,
            )
            for base in (REFERENCE_LAB.haematoxylin, REFERENCE_LAB.eosin)
        ]
        if _plausible(*vectors):
            break
    low, high = np.log(_INTENSITY_RANGE)
    intensities = np.exp(spread * rng.uniform(low, high, 2))
    brightness = 245.0 + spread * (rng.uniform(*_GLASS_BRIGHTNESS) - 245.0)
    glass = np.clip(brightness + spread * rng.uniform(-1, 1, 3) * _GLASS_TINT, 1, 255)
    return StainProfile(
        tuple(vectors[0]),
        tuple(vectors[1]),
        tuple(intensities),
        tuple(glass),
        name=name if name is not None else seed_name,
    )


def sample_slide_stains(rng, lab, jitter):
    """One slide's stains: the lab's, jittered.

    Each component of each vector is scaled by a log-normal factor of
    spread ``1.5 * jitter`` (a dye absorbing a little more or less in each
    channel; about 5 degrees at ``jitter=0.1``, never a negative or vanishing
    component), each intensity by a log-normal factor of spread ``jitter``,
    the glass by ``25 * jitter`` grey levels (and ``10 * jitter`` per
    channel).

    Returns
    -------
    stains : dict
        ``vectors`` (2, 3) unit rows, haematoxylin first; ``strength`` (2,);
        ``I0`` (3,).
    """
    vectors = []
    for base in (lab.haematoxylin, lab.eosin):
        vector = np.asarray(base) * np.exp(1.5 * jitter * rng.standard_normal(3))
        vectors.append(vector / np.linalg.norm(vector))
    strength = np.asarray(lab.intensities) * np.exp(jitter * rng.standard_normal(2))
    glass = np.asarray(lab.glass) + jitter * 25 * rng.standard_normal()
    glass = np.clip(glass + jitter * 10 * rng.standard_normal(3), 200, 255)
    return {"vectors": np.array(vectors), "strength": strength, "I0": glass}
