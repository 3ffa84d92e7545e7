"""The README's example runs, as written, at a tiny size."""

import re
import warnings
from pathlib import Path

import pytest

from sklearn_gastric.datasets import make_gastric_slides

README = Path(__file__).resolve().parents[1] / "README.md"

# The sizes of the example, and the tiny ones the test runs it at; each must
# be in the example, so that a change there shows here.
TINY = {
    "tile_size=512": "tile_size=32",
    "PatchSegmenter(random_state=0)": (
        "PatchSegmenter(base_channels=4, depth=2, feature_dim=8, max_epochs=1, "
        "validation_fraction=0, random_state=0)"
    ),
    "normalizer=normalizer,": "normalizer=normalizer, n_patches=4, min_tissue=0.0,",
    "k=10": "k=2",
    'memory="cache/"': "memory=cache, classifier=classifier",
}


def _example():
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


def test_the_readme_example_runs_at_a_tiny_size(he_target_path, tmp_path):
    from sklearn_gastric import GCNSlideClassifier

    code = _example()
    for large, tiny in TINY.items():
        assert large in code, f"the README example no longer has {large!r}"
        code = code.replace(large, tiny)
    slides, labels, lesions = make_gastric_slides(
        4, size=256, classes=["negative", "carcinoma"], random_state=0
    )
    namespace = {
        "reference_image": he_target_path,
        "annotated_slides": slides[:2],
        "lesion_masks": lesions[:2],
        "slide_labels": labels[:2],
        "train_slides": slides,
        "y_train": labels,
        "test_slides": slides[:1],
        "cache": str(tmp_path / "cache"),
        "classifier": GCNSlideClassifier(max_epochs=1, random_state=0),
    }
    # The recipe shows the segmenter the colours it learnt: no stain warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, str(README), "exec"), namespace)
    assert not [w for w in caught if "trained on patches of" in str(w.message)]
    assert namespace["segmenter"].training_stain_["method"] == "macenko"
    assert namespace["pipe"].predict_proba(slides[:1]).shape == (1, 2)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
