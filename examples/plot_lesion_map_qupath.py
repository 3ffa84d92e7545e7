"""
================================
Lesion maps and export to QuPath
================================

Step 9 of the method shows the pathologist where the suspected lesions are:
the pixels whose lesion probability is above a threshold.
:func:`~sklearn_gastric.visualization.lesion_map` assembles a slide's
probability map from its tiles' maps (the segmenter's ``prob_maps``) and
finds the connected regions above the threshold;
:class:`~sklearn_gastric.visualization.LesionMapDisplay` draws it over the
slide with the top-K tiles and the predicted class, leaving the tissue
visible; :class:`~sklearn_gastric.visualization.TileGalleryDisplay` and
:class:`~sklearn_gastric.visualization.SlideGraphDisplay` show the top-K tiles
and their graph; and :func:`~sklearn_gastric.visualization.export_geojson`
writes the regions as annotations that QuPath imports.
"""

# %%
# A pipeline with a trained segmenter
# -----------------------------------
# As in :ref:`sphx_glr_auto_examples_plot_quick_start.py`, small and quickly
# trained. ``map_downsample=4`` keeps 16x16-pixel probability maps of the
# 64-pixel tiles.
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from sklearn_gastric import (
    GCNSlideClassifier,
    LesionMapDisplay,
    PatchSegmenter,
    Slide,
    export_geojson,
    lesion_map,
)
from sklearn_gastric.datasets import (
    fetch_cmu_small_region,
    make_gastric_slides,
    make_patch_dataset,
)
from sklearn_gastric.pipeline import make_gastric_pipeline, predict_slides
from sklearn_gastric.visualization import SlideGraphDisplay, TileGalleryDisplay

torch.set_num_threads(1)  # often faster on a busy laptop

patches, masks, patch_labels = make_patch_dataset(256, tile_size=64, random_state=0)
segmenter = PatchSegmenter(
    base_channels=8,
    depth=3,
    feature_dim=16,
    max_epochs=6,
    lr=3e-3,
    validation_fraction=0,
    map_downsample=4,
    random_state=0,
).fit(patches, masks, patch_labels)

slides, labels, _ = make_gastric_slides(16, size=512, random_state=1)
pipe = make_gastric_pipeline(
    segmenter,
    tile_size=64,
    k=8,
    classifier=GCNSlideClassifier(max_epochs=100, random_state=0),
).fit(slides, labels)

# %%
# A new slide with a known lesion
# -------------------------------
# A synthetic carcinoma slide, with its true lesion mask.
(image,), (label,), (true_mask,) = make_gastric_slides(
    1, size=768, classes=["carcinoma"], lesion_fraction=0.08, random_state=7
)
slide = Slide(image, name="synthetic carcinoma", mpp=0.5)

# %%
# Display the lesion map
# ----------------------
# :func:`~sklearn_gastric.pipeline.predict_slides` runs the fitted pipeline
# on the slide and keeps every step's output: the segmenter's tiles give the
# lesion map, the top-K selector's the numbered tiles (in score order), the
# graph step the edges between them, and the GCN the class probabilities.
# :meth:`~sklearn_gastric.visualization.LesionMapDisplay.from_prediction`
# draws it, with the probabilities in the title. Only the pixels above the
# lesion threshold are painted, from yellow (just above it) to an opaque red
# (probability 1); everything below stays clear, so the tissue under a
# suspected lesion and around it can be read. Black outlines are the regions
# above the threshold; the numbered blue squares the top-K tiles. The scale
# bar needs the slide's resolution: synthetic slides are at 0.5 µm per pixel.
fig, (ax_true, ax_map) = plt.subplots(1, 2, figsize=(12, 5.6))
ax_true.imshow(image)
ax_true.contour(true_mask, levels=[0.5], colors="lime", linewidths=1)
ax_true.set_title(f"{slide.name}: true lesion ({label})")
ax_true.set_axis_off()
(prediction,) = predict_slides(pipe, [slide], threshold=0.5)
display = LesionMapDisplay.from_prediction(prediction, ax=ax_map)
fig.tight_layout()

# %%
# The top-K tiles and their graph
# -------------------------------
# The tiles the classifier looked at, as the segmenter read them, with the
# outline of their pixels above the threshold: ``gallery=True`` puts them in
# an inset left of the map, numbered as on it, at full detail (what
# ``sklearn-gastric predict`` writes); the
# :class:`~sklearn_gastric.visualization.TileGalleryDisplay` shows them
# larger, with their scores and coordinates. Then the Pearson graph over
# them, each node at its tile's place on the slide (``show_edges=True``
# draws the same edges on the lesion map).
LesionMapDisplay.from_prediction(prediction, gallery=True)
TileGalleryDisplay.from_prediction(prediction, n_cols=4)
SlideGraphDisplay(prediction.graph).plot()

# %%
# The map and its regions
# -----------------------
# ``prediction.bag`` holds the segmented tiles of the slide, so the map can be
# recomputed, at another threshold for instance, without running the
# network again.
print(prediction)
strict = lesion_map(prediction.bag, threshold=0.8)
print(prediction.lesion_map)
print(strict)
largest = sorted(display.lesion_map.regions, key=lambda r: r.area, reverse=True)
for region in largest[:5]:
    print(
        f"region {region.label}: area {region.area:.0f} px, bbox {region.bbox}, "
        f"mean probability {region.mean_probability:.2f}"
    )

# %%
# How much of the true lesion does the map find? The map has one pixel per
# ``downsample`` level-0 pixels along each axis. This tiny network, trained
# for a few epochs, finds most of the true lesion but also marks parts of
# normal glands; a network trained longer on more patches is more specific.
step = int(display.lesion_map.downsample)
true_small = true_mask[::step, ::step]
found = display.lesion_map.mask[: true_small.shape[0], : true_small.shape[1]]
print(
    f"map pixels: {found.sum()} suspected, {true_small.sum()} truly lesion, "
    f"{(found & true_small).sum()} both"
)

# %%
# Export to QuPath
# ----------------
# :func:`~sklearn_gastric.visualization.export_geojson` writes one GeoJSON Feature per
# region of the prediction's lesion map, a polygon in level-0 pixel
# coordinates with the properties QuPath reads. Each region is classified as
# the segmenter's class of highest mean patch probability over its tiles.
# In QuPath, open the slide, then *File > Import objects* (or drag and drop
# the file onto it).
with tempfile.TemporaryDirectory() as folder:
    path = export_geojson(prediction, Path(folder) / "lesions.geojson")
    collection = json.loads(path.read_text())

print(collection["type"], "with", len(collection["features"]), "features")
if collection["features"]:
    feature = collection["features"][0]
    print(
        "geometry:",
        feature["geometry"]["type"],
        len(feature["geometry"]["coordinates"][0]),
        "points",
    )
    print(json.dumps(feature["properties"]))

# %%
# A real slide file
# -----------------
# The same on the real Aperio slide CMU-1-Small-Region, the kind of file
# QuPath opens: the GeoJSON coordinates are level-0 pixels of the file. The
# slide shows skin, not stomach, and the network was trained on synthetic
# patches only, so the map is a demonstration of the mechanics, not a
# finding. The classifier says so itself: the slide's out-of-distribution
# score (how far its top-K tiles lie from the training slides' tiles) is
# above the threshold learnt at ``fit``, and the title carries the warning.
cmu = fetch_cmu_small_region()
fig, ax = plt.subplots(figsize=(6, 7))
(cmu_prediction,) = predict_slides(pipe, [cmu], threshold=0.5)
display = LesionMapDisplay.from_prediction(cmu_prediction, max_size=768, ax=ax)
with tempfile.TemporaryDirectory() as folder:
    path = export_geojson(cmu_prediction, Path(folder) / "cmu_lesions.geojson")
    n_features = len(json.loads(path.read_text())["features"])
print(
    f"{display.lesion_map.name}: {len(display.bag)} tissue tiles analysed, "
    f"{n_features} regions exported"
)
print(
    f"out of distribution: {cmu_prediction.out_of_distribution} "
    f"(score {cmu_prediction.ood_score:.3g}, threshold "
    f"{cmu_prediction.ood_threshold:.3g})"
)
