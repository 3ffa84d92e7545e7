"""Every public function checks its arguments with ``@validate_params``, so a
bad argument gets scikit-learn's ``InvalidParameterError`` naming it."""

import importlib
import inspect

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.graph import collate_graphs, normalize_adjacency, tile_profile
from sklearn_gastric.preprocessing import (
    estimate_stains,
    ink_mask,
    normalize_stains,
    tissue_fraction,
    tissue_mask,
)
from sklearn_gastric.segmentation import augment_patch, dice_loss, euclidean_loss

PACKAGES = [
    "sklearn_gastric",
    "sklearn_gastric.baselines",
    "sklearn_gastric.datasets",
    "sklearn_gastric.graph",
    "sklearn_gastric.io",
    "sklearn_gastric.metrics",
    "sklearn_gastric.preprocessing",
    "sklearn_gastric.segmentation",
    "sklearn_gastric.visualization",
]
# Model files are checked by their own module; the command line parses its
# arguments with argparse.
NOT_CHECKED = {"save_model", "load_model"}


def _public_functions():
    functions = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        for attribute in package.__all__:
            obj = getattr(package, attribute)
            if inspect.isfunction(obj) and attribute not in NOT_CHECKED:
                functions.append(pytest.param(obj, id=f"{name}.{attribute}"))
    return functions


@pytest.mark.parametrize("function", _public_functions())
def test_every_public_function_validates_its_parameters(function):
    constraints = getattr(function, "_skl_parameter_constraints", None)
    assert constraints is not None, f"{function.__name__} has no @validate_params"
    assert set(constraints) == set(inspect.signature(function).parameters)


RGB = np.full((8, 8, 3), 200, np.uint8)
TENSOR = torch.zeros((1, 4, 4))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: tissue_mask(RGB, remove_pen="yes"), "remove_pen"),
        (lambda: tissue_mask(RGB, max_hole_size=-1), "max_hole_size"),
        (lambda: tissue_mask(RGB, threshold="dark"), "threshold"),
        (lambda: ink_mask(RGB.tolist()), "rgb"),
        (lambda: tissue_fraction(np.ones((2, 2)), 0, [[0, 0]], 4), "downsample"),
        (lambda: tissue_fraction(np.ones((2, 2)), 1, [[0, 0]], -4), "footprint"),
        (lambda: estimate_stains(RGB, method="spams"), "method"),
        (lambda: normalize_stains(RGB, RGB, method="spams"), "method"),
        (lambda: normalize_stains(RGB, 3.0), "target"),
        (lambda: augment_patch(RGB.tolist(), RGB[..., 0]), "patch"),
        (lambda: augment_patch(RGB, RGB[..., 0], hue=2.0), "hue"),
        (lambda: augment_patch(RGB, RGB[..., 0], stretch=-0.1), "stretch"),
        (lambda: augment_patch(RGB, RGB[..., 0], flip=1.5), "flip"),
        (lambda: dice_loss(TENSOR, TENSOR, eps=-1), "eps"),
        (lambda: dice_loss(np.zeros((1, 4, 4)), TENSOR), "proba"),
        (lambda: euclidean_loss(torch.zeros((1, 2)), [0]), "labels"),
        (lambda: normalize_adjacency(np.zeros((2, 2))), "adjacency"),
        (lambda: collate_graphs(None), "batch"),
        (lambda: tile_profile("tiles"), "features"),
    ],
)
def test_bad_arguments_are_refused_by_name(call, name):
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of"):
        call()


def test_checks_validate_params_cannot_express_stay():
    with pytest.raises(ValueError, match="tissue_mask needs an RGB uint8 image"):
        tissue_mask(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="normalize_stains needs an RGB uint8"):
        normalize_stains(np.zeros((8, 8, 3)), RGB)
