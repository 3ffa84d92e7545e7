"""The preprocessing steps' parameter checks and their chain in a Pipeline
with ``memory``. The contract every estimator shares (clone, pickling, one
output per input, ``NotFittedError``) is checked in ``tests/test_common.py``."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.preprocessing import OtsuFilter, StainNormalizer, Tiler


def _he_slide(seed, size=256):
    rng = np.random.RandomState(seed)
    stains = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]])
    conc = rng.gamma(3.0, 0.35, size=(size, size, 2))
    conc[:, : size // 4] = 0  # glass on the left quarter
    rgb = 240 * np.exp(-(conc @ stains)) + rng.normal(0, 1.5, (size, size, 3))
    rgb[:, : size // 4] = 242
    return np.clip(rgb, 0, 255).astype(np.uint8)


SLIDES = [_he_slide(0), _he_slide(1, size=320), _he_slide(2)]


def _input_for(estimator):
    if isinstance(estimator, OtsuFilter):
        return Tiler(64).fit_transform(SLIDES)
    return SLIDES


@pytest.mark.parametrize(
    "estimator, bad",
    [
        (StainNormalizer(), {"method": "spams"}),
        (StainNormalizer(), {"target": 3.5}),
        (Tiler(), {"tile_size": 0}),
        (Tiler(), {"stride": -1}),
        (Tiler(), {"level": 1.5}),
        (OtsuFilter(), {"min_tissue": 1.5}),
        (OtsuFilter(), {"mode": "image"}),
        (OtsuFilter(), {"remove_pen": "yes"}),
    ],
    ids=repr,
)
def test_invalid_parameters_are_rejected_in_fit(estimator, bad):
    estimator.set_params(**bad)  # no validation in __init__ / set_params
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        estimator.fit(_input_for(estimator))


def test_pipeline_with_memory_and_n_jobs(tmp_path):
    pipe = Pipeline(
        [
            ("stain", StainNormalizer(target=_he_slide(9), n_jobs=2)),
            ("tile", Tiler(tile_size=64)),
            ("tissue", OtsuFilter(min_tissue=0.7, n_jobs=2)),
        ],
        memory=str(tmp_path),
    )
    bags = pipe.fit_transform(SLIDES)
    # Tiles on the glass (x < size / 4) are dropped; on the 320-pixel slide the
    # second column is 75% tissue and stays.
    assert [len(b) for b in bags] == [12, 20, 12]
    assert all(b.slide.transform is not None for b in bags)
    # The steps' outputs were cached (hashable, picklable), and a second fit
    # gives the same tiles and pixels.
    assert len(list(tmp_path.rglob("output.pkl"))) == 2
    again = clone(pipe).fit_transform(SLIDES)
    for a, b in zip(bags, again):
        np.testing.assert_array_equal(a.coords, b.coords)
        np.testing.assert_array_equal(a.read_tile(0), b.read_tile(0))
