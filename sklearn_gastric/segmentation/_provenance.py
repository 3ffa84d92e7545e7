"""How training patches were stain-normalised, and the check that a
segmenter is shown tiles coloured the same way.

The provenance travels with the patches that :func:`sample_patches` returns
(:class:`StainedPatches`), so that the recipe records it with no extra
argument, and a segmenter fitted on them keeps it as ``training_stain_``: a
dict of plain values, ``{"method": "none"}`` for raw patches, else the
normaliser's method and its target's parameters (``StainNormalizer``'s
``target_params_``).
"""

import warnings

import numpy as np

__all__ = ["StainedPatches"]

RAW = "none"
# Two targets are the same when every parameter agrees to 0.1 %: refitting a
# normaliser on the same target image gives the same parameters, while two
# H&E images differ by several percent.
_RTOL = 1e-3
_ATOL = 1e-3


class StainedPatches(np.ndarray):
    """Training patches that know how their pixels were stain-normalised.

    :func:`sample_patches` returns its patches as this thin
    :class:`numpy.ndarray` subclass; :meth:`PatchSegmenter.fit
    <sklearn_gastric.segmentation.PatchSegmenter.fit>` records its ``stain``
    as ``training_stain_``, and then warns when a pipeline shows it tiles
    normalised otherwise. Indexing and slicing keep ``stain``; arithmetic
    that makes new pixels, ``np.asarray`` and ``np.concatenate`` give plain
    arrays, whose provenance is unknown.

    Parameters
    ----------
    patches : array-like of shape (n_patches, height, width, 3)
        The patches.
    normalizer : StainNormalizer or None
        The fitted normaliser the patches went through; None for raw
        patches.

    Attributes
    ----------
    stain : dict or None
        ``{"method": "none"}`` for raw patches, else ``{"method": ...}``
        and the target's parameters (``normalizer.target_params_``); None
        when the normaliser does not say its target.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.segmentation import StainedPatches
    >>> patches = StainedPatches(np.zeros((4, 16, 16, 3), np.uint8), None)
    >>> patches.stain, patches[:2].stain
    ({'method': 'none'}, {'method': 'none'})
    """

    def __new__(cls, patches, normalizer):
        array = np.asarray(patches).view(cls)
        array.stain = normalizer_stain(normalizer)
        return array

    def __array_finalize__(self, obj):
        self.stain = getattr(obj, "stain", None)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # New pixel values (patches / 255, patches.mean()) are not the
        # sampled patches: they leave as plain arrays.
        array = np.asarray(array)
        return array[()] if return_scalar else array

    def __reduce__(self):
        constructor, arguments, state = super().__reduce__()
        return constructor, arguments, (state, self.stain)

    def __setstate__(self, state):
        array_state, self.stain = state
        super().__setstate__(array_state)


def normalizer_stain(normalizer):
    """The provenance of pixels that went through ``normalizer`` (None:
    raw): a dict of plain values, or None when it does not say its target."""
    if normalizer is None:
        return {"method": RAW}
    method = getattr(normalizer, "method", None)
    params = getattr(normalizer, "target_params_", None)
    if not isinstance(method, str) or not isinstance(params, dict):
        return None
    return _stain(method, params)


def patches_stain(patches):
    """The provenance ``patches`` carry (None: unknown)."""
    stain = getattr(patches, "stain", None) if isinstance(patches, np.ndarray) else None
    return None if stain is None else _stain(stain["method"], stain)


def slide_stain(slide):
    """What the tiles of ``slide`` are normalised to: ``{"method": "none"}``
    without a transform, the target of its :class:`StainTransform`, None for
    another transform (unknown)."""
    from ..preprocessing._stain_methods import StainTransform

    transform = slide.transform
    if transform is None:
        return {"method": RAW}
    if isinstance(transform, StainTransform):
        return _stain(transform.method, transform.target)
    return None


def _stain(method, params):
    stain = {"method": str(method)}
    if method != RAW:
        stain.update(
            (str(key), np.array(value, dtype=np.float64))
            for key, value in params.items()
            if key != "method"
        )
    return stain


def same_stain(a, b):
    """Whether two provenances are the same normalisation."""
    if a["method"] != b["method"] or set(a) != set(b):
        return False
    return all(
        np.shape(a[key]) == np.shape(b[key])
        and np.allclose(a[key], b[key], rtol=_RTOL, atol=_ATOL)
        for key in a
        if key != "method"
    )


def describe_stain(stain):
    """``stain`` in words, for a message."""
    if stain["method"] == RAW:
        return "raw, unnormalised colours"

    def vector(values):
        return "(" + ", ".join(f"{v:.3f}" for v in np.ravel(values)) + ")"

    method = stain["method"].capitalize()
    if "stains" in stain:
        hematoxylin, eosin = np.asarray(stain["stains"])
        target = (
            f"haematoxylin {vector(hematoxylin)} and eosin {vector(eosin)} "
            f"(max concentrations {vector(stain['max_concentrations'])})"
        )
    else:
        target = f"Lab mean {vector(stain['mean'])} and std {vector(stain['std'])}"
    return f"colours {method}-normalised to a target of {target}"


def warn_if_other_stain(trained, tile_bags, stacklevel):
    """One UserWarning when some bags' slides are coloured otherwise than
    the training patches (``trained``; None: unknown, nothing said), naming
    the first such slide and counting the others."""
    if trained is None:
        return
    mismatched = []
    for bag in tile_bags:
        shown = slide_stain(bag.slide)
        if shown is not None and not same_stain(trained, shown):
            mismatched.append((bag.name, shown))
    if not mismatched:
        return
    name, shown = mismatched[0]
    n_others = len(mismatched) - 1
    plural = "s" if n_others > 1 else ""
    others = f" (and {n_others} other slide{plural})" if n_others else ""
    if shown["method"] == RAW:
        advice = (
            "Normalise the slides as the patches were: the same StainNormalizer "
            "target first in the pipeline (make_gastric_pipeline(..., target=))."
        )
    elif trained["method"] == RAW:
        advice = (
            "Train the segmenter on patches normalised as the pipeline normalises "
            "(sample_patches(..., normalizer=) with the pipeline's normaliser), "
            "or leave the StainNormalizer out of the pipeline."
        )
    else:
        advice = (
            "Give the pipeline the target the patches were normalised to, or "
            "train the segmenter on patches from sample_patches(..., "
            "normalizer=) with the pipeline's normaliser."
        )
    warnings.warn(
        f"Slide {name!r}{others}: this PatchSegmenter was trained on patches of "
        f"{describe_stain(trained)}, but is shown tiles of "
        f"{describe_stain(shown)}, so its maps, scores and features are not "
        f"those it was trained to give. {advice}",
        UserWarning,
        stacklevel=stacklevel + 1,
    )
