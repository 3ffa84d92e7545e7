"""One configured instance of every public estimator, for the common suite.

The settings are small but valid, so that each fit on the shared fixtures of
``conftest.py`` takes well under a second. A new public estimator must be
added here: ``test_common.py`` fails until it is.
"""

import numpy as np

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
    StainNormalizer,
    Tiler,
    TopKSelector,
)

# The network of ``conftest.tiny_segmenter``: every test that needs a trained
# segmenter shares it.
TINY_SEGMENTER = dict(
    base_channels=4,
    depth=2,
    feature_dim=8,
    max_epochs=1,
    batch_size=16,
    validation_fraction=0,
    random_state=0,
)

# The classes of ``make_patch_dataset``, sorted: the tiny segmenter's
# ``classes_``, hence the columns of the ``patch_proba`` it writes.
PATCH_CLASSES = ("HGIN", "LGIN", "carcinoma", "negative")

# A reference image for StainNormalizer(target=...): a 64-pixel H&E-like
# render (haematoxylin and eosin optical densities through Beer-Lambert).
_DENSITIES = np.random.default_rng(9).gamma(3.0, 0.35, size=(64, 64, 2))
TARGET_IMAGE = (
    240 * np.exp(-_DENSITIES @ [[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]])
).astype(np.uint8)

# Steps with nothing to learn: always fitted, as FunctionTransformer is.
STATELESS = (Tiler, OtsuFilter, TopKSelector, PearsonGraphBuilder)


def estimator_instances():
    """Yield one unfitted, configured instance per estimator and variant.

    A variant is another instance of the same class whose parameters take
    another code path (another stain method, Otsu per tile, the distance
    reading of the Pearson rule).
    """
    yield StainNormalizer()
    yield StainNormalizer(target=TARGET_IMAGE)
    yield StainNormalizer(method="reinhard")
    yield Tiler(tile_size=32)
    yield OtsuFilter(min_tissue=0.5)
    yield OtsuFilter(min_tissue=0.5, mode="tile")
    yield PatchSegmenter(**TINY_SEGMENTER)
    yield TopKSelector(k=4)
    yield PearsonGraphBuilder(threshold=0.2)
    yield PearsonGraphBuilder(threshold=-0.25, rule="distance")
    yield GCNSlideClassifier(hidden_units=8, max_epochs=3, random_state=0)
    yield ProportionThresholdClassifier(columns=PATCH_CLASSES)
    yield PooledFeatureClassifier()


def estimator_id(estimator):
    """The test id of an instance: its class and changed parameters, arrays
    by shape."""
    changed = [
        f"{name}=array{value.shape}"
        if isinstance(value, np.ndarray)
        else f"{name}={value!r}"
        for name, value in changed_params(estimator).items()
    ]
    return f"{type(estimator).__name__}({', '.join(changed)})"


def same_value(left, right):
    """Parameter equality; arrays compare by value."""
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return np.array_equal(left, right)
    return left == right


def changed_params(estimator):
    """The parameters whose value is not the default, by name."""
    defaults = type(estimator)().get_params(deep=False)
    return {
        name: value
        for name, value in estimator.get_params(deep=False).items()
        if not same_value(value, defaults[name])
    }
