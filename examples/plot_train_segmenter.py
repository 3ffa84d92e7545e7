"""
============================
Training the patch segmenter
============================

Step 5 of the method: a V-Net-like encoder-decoder turns each tile into a
per-pixel lesion probability map and a feature vector, and classifies the
tile. :class:`~sklearn_gastric.segmentation.PatchSegmenter` trains it with skorch on
patches with pixel masks and patch labels. The loss is a weighted sum of a
Dice loss and a classification loss (by default the cross-entropy, weighted
so that each class counts alike; the patent's Euclidean distance between the
one-hot label and the predicted probabilities is
``classification_loss="euclidean"``), and training patches are augmented
with flips, rotations, stretches and colour jitter (and, with
``hed_jitter``, stain jitter in HED space).

The network here is tiny and trained for a few epochs so that the example
runs in seconds; the library's defaults are larger.
"""

# %%
# Training patches
# ----------------
# :func:`~sklearn_gastric.datasets.make_patch_dataset` renders synthetic
# H&E-like patches: half contain one lesion focus (LGIN, HGIN or carcinoma)
# whose pixels the mask marks, the others are negative; lymphoid aggregates
# (benign mimics) appear in either kind.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from sklearn_gastric import PatchSegmenter
from sklearn_gastric.datasets import GASTRIC_CLASSES, make_patch_dataset
from sklearn_gastric.segmentation import augment_patch

torch.set_num_threads(1)  # often faster on a busy laptop

patches, masks, labels = make_patch_dataset(256, tile_size=64, random_state=0)
train_p, test_p, train_m, test_m, train_y, test_y = train_test_split(
    patches, masks, labels, test_size=64, stratify=labels, random_state=0
)
names, counts = np.unique(labels, return_counts=True)
print("patches per label:", dict(zip(names, counts.tolist())))

# Two patches of each class.
shown = np.concatenate(
    [np.flatnonzero(train_y == name)[:2] for name in GASTRIC_CLASSES]
)
fig, axes = plt.subplots(2, len(shown), figsize=(14, 4.2))
for index, (top, bottom) in zip(shown, axes.T):
    top.imshow(train_p[index])
    top.set_title(train_y[index], fontsize=9)
    bottom.imshow(train_m[index], cmap="gray", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_axis_off()
axes[0, 0].text(-8, 32, "patch", rotation=90, va="center", ha="right")
axes[1, 0].text(-8, 32, "mask", rotation=90, va="center", ha="right")
fig.tight_layout()

# %%
# The augmentation
# ----------------
# :func:`~sklearn_gastric.segmentation.augment_patch` changes the patch and
# its mask with the same geometry, and the colours of the patch only.
fig, axes = plt.subplots(2, 5, figsize=(10, 4.2))
lesion = int(np.flatnonzero(train_y != "negative")[0])
for seed, (top, bottom) in enumerate(axes.T):
    patch, mask = augment_patch(train_p[lesion], train_m[lesion], random_state=seed)
    top.imshow(patch)
    bottom.imshow(mask, cmap="gray", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()

# %%
# Fit
# ---
# 20 % of the training patches are held out to compute, each epoch, a
# validation loss and beside it the validation patches' Dice
# (``valid_dice``) and balanced accuracy of the patch classes
# (``valid_bacc``); training stops early when the loss stops improving
# (``patience``) and the best weights are kept. ``net_.history`` is
# skorch's training log.
segmenter = PatchSegmenter(
    base_channels=8,
    depth=3,
    feature_dim=16,
    max_epochs=6,
    lr=3e-3,
    validation_fraction=0.2,
    patience=3,
    random_state=0,
).fit(train_p, train_m, train_y)

history = segmenter.net_.history
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(history[:, "epoch"], history[:, "train_loss"], "o-", label="train")
ax.plot(history[:, "epoch"], history[:, "valid_loss"], "o-", label="validation")
ax.set_xlabel("epoch")
ax.set_ylabel("loss (Dice + cross-entropy)")
ax.legend()
fig.tight_layout()

# %%
# Probability maps of held-out patches
# ------------------------------------
# ``predict_proba_maps`` gives the per-pixel probability of "lesion". The
# Dice coefficient measures the overlap of the thresholded map with the true
# mask.
maps = segmenter.predict_proba_maps(test_p)
predicted, truth = maps > 0.5, test_m > 0.5
dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
print(f"held-out pixel Dice: {dice:.3f}")
print("validation Dice and balanced accuracy per epoch:")
print(np.round(history[:, ("valid_dice", "valid_bacc")], 2))

# %%
# The patch classes
# -----------------
# ``predict_patch_proba`` gives the classification branch's probabilities,
# in the order of ``classes_``; balanced accuracy weighs each class alike.
predicted_class = segmenter.classes_[segmenter.predict_patch_proba(test_p).argmax(1)]
print(
    f"held-out patch balanced accuracy: "
    f"{balanced_accuracy_score(test_y, predicted_class):.3f}"
)

show = np.r_[
    np.flatnonzero(test_y != "negative")[:4], np.flatnonzero(test_y == "negative")[:2]
]
fig, axes = plt.subplots(3, len(show), figsize=(12, 6.3))
for column, index in zip(axes.T, show):
    column[0].imshow(test_p[index])
    column[0].set_title(test_y[index], fontsize=9)
    column[1].imshow(test_m[index], cmap="gray", vmin=0, vmax=1)
    column[2].imshow(maps[index], cmap="inferno", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_axis_off()
for ax, name in zip(axes[:, 0], ["patch", "true mask", "probability"]):
    ax.text(-8, 32, name, rotation=90, va="center", ha="right")
fig.tight_layout()

# %%
# Next steps
# ----------
# A trained segmenter enters a pipeline as
# ``FrozenEstimator(segmenter)`` (see
# :ref:`sphx_glr_auto_examples_plot_quick_start.py`), where it turns every
# tissue tile of a :class:`~sklearn_gastric.preprocessing.TileBag` into ``features``,
# ``scores`` (the sum of the tile's probability map), ``patch_proba`` and
# ``prob_maps``. It is saved with the pipeline by :func:`joblib.dump`.
