"""
===================================================
Calibrated probabilities and slides to not trust
===================================================

A slide classifier's probability should mean what it says: of the slides
given 0.8, about 80 % should be right. And on a slide unlike any it was
trained on, it should say so instead of answering with certainty. This
example fits the patent's slide head twice, without and with
``calibration="temperature"``, draws both reliability diagrams on held-out
slides (:class:`~sklearn_gastric.visualization.ReliabilityDiagramDisplay`,
:func:`~sklearn_gastric.metrics.expected_calibration_error`), and shows the
out-of-distribution score that
:class:`~sklearn_gastric.graph.GCNSlideClassifier` learns at ``fit``.
"""

# %%
# Slide graphs of a training and a held-out cohort
# ------------------------------------------------
# A small segmenter, as in :ref:`sphx_glr_auto_examples_plot_quick_start.py`;
# each slide is segmented once and turned into its top-K graph by the
# pipeline's front steps, so that the heads below fit in seconds.
import matplotlib.pyplot as plt
import numpy as np
import torch

from sklearn_gastric import GCNSlideClassifier, PatchSegmenter, Slide
from sklearn_gastric.datasets import (
    fetch_cmu_small_region,
    make_gastric_slides,
    make_patch_dataset,
)
from sklearn_gastric.metrics import expected_calibration_error
from sklearn_gastric.pipeline import make_gastric_pipeline
from sklearn_gastric.visualization import ReliabilityDiagramDisplay

torch.set_num_threads(1)

patches, masks, patch_labels = make_patch_dataset(384, tile_size=64, random_state=0)
segmenter = PatchSegmenter(
    base_channels=8,
    depth=3,
    feature_dim=16,
    max_epochs=6,
    lr=3e-3,
    validation_fraction=0,
    random_state=0,
).fit(patches, masks, patch_labels)
front = make_gastric_pipeline(segmenter, tile_size=64, k=8)[:-1].fit([])

train, y_train, _ = make_gastric_slides(48, size=512, random_state=1)
held, y_held, _ = make_gastric_slides(48, size=512, random_state=2)
graphs_train = front.transform([Slide(a) for a in train])
graphs_held = front.transform([Slide(a) for a in held])

# %%
# Two heads, one calibrated
# -------------------------
# ``calibration="temperature"`` trains ``calibration_cv`` extra networks,
# each on four fifths of the training slides, and learns the one
# temperature that makes their predictions on the fifth they did not see
# most likely. The predicted classes are the same; the probabilities are
# rescaled.
heads = {
    "no calibration": GCNSlideClassifier(max_epochs=100, random_state=0),
    "temperature": GCNSlideClassifier(
        max_epochs=100, calibration="temperature", random_state=0
    ),
}
fig, axes = plt.subplots(1, 2, figsize=(10, 5.5))
for ax, (name, head) in zip(axes, heads.items()):
    head.fit(graphs_train, y_train)
    proba = head.predict_proba(graphs_held)
    ReliabilityDiagramDisplay.from_predictions(
        y_held, proba, labels=head.classes_, name=name, ax=ax
    )
    ece = expected_calibration_error(y_held, proba, labels=head.classes_)
    print(f"{name}: temperature {head.temperature_:.2f}, held-out ECE {ece:.3f}")
fig.tight_layout()

# %%
# A slide unlike the training slides
# ----------------------------------
# :meth:`~sklearn_gastric.graph.GCNSlideClassifier.ood_score` measures how
# far a slide lies from the training slides twice, by its top-K tiles (their
# median Mahalanobis distance to the training tiles) and by its profile (the
# spread of every feature over all its tiles, which gives away a slide whose
# top-K look ordinary), each over its median among training slides, and
# keeps the larger. ``ood_threshold_`` is set on out-of-fold training slides
# so that about 5 % of new in-distribution slides exceed it. The real CMU
# slide shows skin: the classifier still gives it a class, and flags it.
head = heads["temperature"]
cmu_graph = front.transform([fetch_cmu_small_region()])
held_scores = head.ood_score(graphs_held)
cmu_score = head.ood_score(cmu_graph)[0]
print(
    f"threshold {head.ood_threshold_:.3f}; held-out slides flagged: "
    f"{np.mean(held_scores > head.ood_threshold_):.1%}; CMU score {cmu_score:.3f}, "
    f"flagged: {bool(head.is_out_of_distribution(cmu_graph)[0])}"
)
fig, ax = plt.subplots(figsize=(6, 3))
bins = np.geomspace(
    held_scores.min() * 0.9, max(cmu_score, held_scores.max()) * 1.1, 40
)
ax.hist(held_scores, bins=bins, color="#0072b2", label="held-out synthetic slides")
ax.set_xscale("log")
ax.axvline(head.ood_threshold_, color="black", ls="--", label="threshold")
ax.axvline(cmu_score, color="#c0392b", label="CMU-1-Small-Region (skin)")
ax.set_xlabel("out-of-distribution score (log scale)")
ax.set_ylabel("slides")
ax.legend(fontsize=8)
fig.tight_layout()
