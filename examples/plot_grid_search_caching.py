"""
=======================================================
The training recipe: normalised patches, cached search
=======================================================

The segmenter is by far the most expensive step, and a grid over the later
steps (the number of tiles ``k``, the graph threshold, the GCN's
parameters) should not run it again for every candidate. Two caches make
sure it runs once per slide:

- ``Pipeline(memory=...)`` caches the fitted transformers, so every
  candidate reuses the fits of the steps before the ones that change;
- ``PatchSegmenter(memory=...)`` caches its per-slide results, which the
  pipeline cache does not cover: scoring each candidate on its test fold
  calls ``transform``, not ``fit``.

The segmenter is trained once, outside the search, and enters the pipeline
as a :class:`~sklearn.frozen.FrozenEstimator`: ``clone`` keeps it as it is
and the search never retrains it. So does the stain normaliser: fitted once
on the training cohort (its target is "the standard colour used in
training"), it normalises the segmenter's training patches
(:func:`~sklearn_gastric.segmentation.sample_patches` with ``normalizer=``)
and, frozen, every slide the pipeline sees, each with its own estimated
stains. The search's inner cross-validation runs on the training cohort
only; held-out slides score the chosen model once.
"""

# %%
# A trained segmenter and a small cohort
# --------------------------------------
import copy
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    StainNormalizer,
    Tiler,
    TopKSelector,
)
from sklearn_gastric.datasets import make_gastric_slides
from sklearn_gastric.segmentation import sample_patches

torch.set_num_threads(1)  # often faster on a busy laptop

classes = ["negative", "carcinoma"]
slides, labels, _ = make_gastric_slides(18, size=512, classes=classes, random_state=0)
held_out, held_out_labels, _ = make_gastric_slides(
    8, size=512, classes=classes, random_state=1
)
normalizer = StainNormalizer().fit(slides)

# The segmenter learns from another, annotated cohort (lesion masks known),
# through the same normaliser.
annotated, annotated_labels, lesions = make_gastric_slides(
    8, size=512, classes=classes, random_state=2
)
patches, masks, patch_labels, _ = sample_patches(
    annotated,
    lesions,
    annotated_labels,
    tile_size=64,
    n_patches=16,
    normalizer=normalizer,
    random_state=0,
)
segmenter = PatchSegmenter(
    base_channels=8,
    depth=3,
    feature_dim=16,
    max_epochs=3,
    lr=3e-3,
    validation_fraction=0,
    random_state=0,
).fit(patches, masks, patch_labels)

# %%
# The pipeline, with both caches in one temporary folder
# -------------------------------------------------------
cache = tempfile.TemporaryDirectory()
segmenter.set_params(memory=cache.name)
pipe = Pipeline(
    [
        ("stain", FrozenEstimator(normalizer)),
        ("tile", Tiler(tile_size=64)),
        ("tissue", OtsuFilter(min_tissue=0.7)),
        ("seg", FrozenEstimator(segmenter)),
        ("topk", TopKSelector(k=8)),
        ("graph", PearsonGraphBuilder(threshold=0.5)),
        (
            "gcn",
            GCNSlideClassifier(
                max_epochs=40, dropout=0.2, class_weight="balanced", random_state=0
            ),
        ),
    ],
    memory=cache.name,
)
param_grid = {
    "topk__k": [4, 8],
    "graph__threshold": [0.5, 0.9],
    "gcn__weight_decay": [1e-4, 1e-2],
}
cv = StratifiedKFold(3, shuffle=True, random_state=0)

# %%
# Search
# ------
# 8 candidates times 3 folds, plus the final refit: 25 pipeline fits and 24
# scorings. The CNN runs on each slide once, in the first fit that sees
# it; every later fit and scoring reads its results back from the cache.
start = time.perf_counter()
grid = GridSearchCV(pipe, param_grid, cv=cv, scoring="balanced_accuracy")
grid.fit(slides, labels)
cold = time.perf_counter() - start
print(f"first search: {cold:.1f} s")
print("best parameters:", grid.best_params_)
print(f"best inner-CV balanced accuracy: {grid.best_score_:.2f}")

# %%
# What the cache holds
# --------------------
# joblib keeps one entry per segmented slide (peeking into its folder
# layout here, for illustration): 18 slides, 18 runs of the CNN, for 25
# fits and 24 scorings.
cached = list(Path(cache.name).rglob("_segment_bag_cached/*/output.pkl"))
print(f"segmentations cached: {len(cached)} for {len(slides)} slides")

# %%
# Reading a slide's results back is much cheaper than segmenting it.
bags = pipe[:3].fit_transform(slides)
uncached = copy.deepcopy(segmenter).set_params(memory=None)
start = time.perf_counter()
uncached.transform(bags)
print(f"segmenting the {len(slides)} slides: {time.perf_counter() - start:.2f} s")
start = time.perf_counter()
segmenter.transform(bags)
print(f"reading them from the cache: {time.perf_counter() - start:.2f} s")

# %%
# The results
# -----------
# Mean balanced accuracy over the folds for each candidate. The cohort is tiny and
# synthetic and the network barely trained: read the table as an
# illustration of the API, not as a result.
results = grid.cv_results_
fig, ax = plt.subplots(figsize=(7, 3.2))
names = [
    f"k={p['topk__k']}, t={p['graph__threshold']}, wd={p['gcn__weight_decay']:g}"
    for p in results["params"]
]
order = np.argsort(results["rank_test_score"], kind="stable")
ax.barh(
    np.array(names)[order][::-1],
    results["mean_test_score"][order][::-1],
    xerr=results["std_test_score"][order][::-1],
)
ax.set_xlabel("mean inner-CV balanced accuracy")
ax.set_xlim(0, 1)
fig.tight_layout()

# %%
# The fitted search is a classifier of slides like any other; the held-out
# slides, never seen by the search, score it once.
print("predicted:", grid.predict(held_out))
print("true:     ", held_out_labels)
print(f"held-out balanced accuracy: {grid.score(held_out, held_out_labels):.2f}")
cache.cleanup()
