"""
===========
Quick start
===========

The whole method of patent CN 112990339 A as one scikit-learn
:class:`~sklearn.pipeline.Pipeline`: stain normalisation, tiling, Otsu
tissue filter, a trained V-Net segmenter (frozen), the top-K tiles, a
Pearson graph over them and a graph convolutional network that classifies
the slide as negative, LGIN, HGIN or carcinoma.

Everything here is small so that it runs in seconds on a CPU: 64-pixel
tiles instead of the patent's 512, a tiny network trained for a few
epochs, and a cohort of 32 synthetic slides. The scores it prints show that
the pieces fit together, not how well the method works.
"""

# %%
# Train the patch segmenter
# -------------------------
# The segmenter (step 5) is trained separately, on patches with pixel lesion
# masks and patch labels, sampled by
# :func:`~sklearn_gastric.segmentation.sample_patches` from annotated
# slides (:func:`~sklearn_gastric.datasets.make_gastric_slides` renders
# synthetic H&E-like slides with their lesion masks; the synthetic data is
# the only labelled data the project has). The patches go through the
# stain normaliser the pipeline will use, fitted once, so that the
# segmenter learns the colours it will be shown; it remembers them
# (``training_stain_``) and warns if a pipeline shows it others.
import tempfile
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
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
from sklearn_gastric.datasets import (
    GASTRIC_CLASSES,
    fetch_he_target,
    make_gastric_slides,
)
from sklearn_gastric.segmentation import sample_patches

# On a busy laptop, one torch thread is often faster than several.
torch.set_num_threads(1)

normalizer = StainNormalizer(target=fetch_he_target()).fit()
annotated, annotated_labels, lesions = make_gastric_slides(8, size=512, random_state=1)
patches, masks, patch_labels, _ = sample_patches(
    annotated,
    lesions,
    annotated_labels,
    tile_size=64,
    n_patches=24,
    normalizer=normalizer,
    random_state=0,
)
segmenter = PatchSegmenter(
    base_channels=8,
    depth=3,
    feature_dim=16,
    max_epochs=4,
    lr=3e-3,
    validation_fraction=0,
    random_state=0,
).fit(patches, masks, patch_labels)
print("patch classes:", segmenter.classes_)

# %%
# A cohort of synthetic slides
# ----------------------------
# :func:`~sklearn_gastric.datasets.make_gastric_slides` renders whole slides
# with lesions of class-dependent morphology over a small part of the
# tissue, and benign mimics (lymphoid aggregates) on every slide. A slide
# may be an RGB array, a path to any file OpenSlide reads, or a
# :class:`~sklearn_gastric.io.Slide`.
slides, labels, _ = make_gastric_slides(32, size=512, random_state=0)
train_slides, test_slides, y_train, y_test = train_test_split(
    slides, labels, test_size=0.25, stratify=labels, random_state=0
)

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, name in zip(axes, GASTRIC_CLASSES):
    ax.imshow(train_slides[list(y_train).index(name)])
    ax.set_title(name)
    ax.set_axis_off()
fig.tight_layout()

# %%
# The pipeline
# ------------
# The trained segmenter enters the pipeline wrapped in
# :class:`~sklearn.frozen.FrozenEstimator`, and so does the normaliser its
# patches went through: fitting the pipeline fits the GCN only.
pipe = Pipeline(
    [
        ("stain", FrozenEstimator(normalizer)),
        ("tile", Tiler(tile_size=64)),
        ("tissue", OtsuFilter(min_tissue=0.7)),
        ("seg", FrozenEstimator(segmenter)),
        ("topk", TopKSelector(k=8)),
        ("graph", PearsonGraphBuilder(threshold=0.5)),
        ("gcn", GCNSlideClassifier(max_epochs=100, random_state=0)),
    ]
)
pipe.fit(train_slides, y_train)
pipe  # noqa: B018 (the last expression of a cell is shown in the docs)

# %%
# Predict new slides
# ------------------
# ``predict_proba`` gives one row of class probabilities per slide, in the
# order of ``classes_``.
proba = pipe.predict_proba(test_slides)
print("classes:", pipe.classes_)
print(proba.round(2))
print(
    f"accuracy on {len(test_slides)} held-out slides: "
    f"{pipe.score(test_slides, y_test):.2f}"
)

ConfusionMatrixDisplay.from_predictions(
    y_test, pipe.predict(test_slides), labels=list(GASTRIC_CLASSES)
)

# %%
# What the steps produce
# ----------------------
# Each step's output is the next one's input: slides, then one
# :class:`~sklearn_gastric.preprocessing.TileBag` per slide (tile coordinates and, after
# the segmenter, features, scores and probability maps), then one
# :class:`~sklearn_gastric.graph.SlideGraph` per slide.
(graph,) = pipe[:-1].transform(test_slides[:1])
print(graph)
print("node scores, highest first:", graph.scores.round(1))
print("adjacency:\n", graph.adjacency)

# %%
# Save and load
# -------------
# The fitted pipeline, segmenter included, is one file.
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "model.joblib"
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    print(
        "same probabilities after loading:",
        (loaded.predict_proba(test_slides) == proba).all(),
    )
