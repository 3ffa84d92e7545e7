"""Scale-out: under ``joblib.parallel_config(backend="dask")`` every per-slide
step runs its slides on the workers of a ``dask.distributed`` cluster, with no
code change, and gives exactly what one process gives."""

import joblib
import numpy as np
import pytest
from output_checks import assert_outputs_equal
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from sklearn_gastric.datasets import make_gastric_slides
from sklearn_gastric.graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
from sklearn_gastric.preprocessing import OtsuFilter, StainNormalizer, Tiler

distributed = pytest.importorskip(
    "distributed",
    reason="dask.distributed is not installed (pip install 'dask[distributed]')",
)

TILE = 32


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, as on separate machines."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def slide_paths(tmp_path_factory):
    """Slide files: what the workers get is a path, opened where they run."""
    paths, labels, _ = make_gastric_slides(
        6,
        size=256,
        classes=["negative", "carcinoma"],
        out_dir=tmp_path_factory.mktemp("slides"),
        random_state=0,
    )
    return paths, labels


def _run_steps(slides, segmenter):
    outputs = {}
    # An integer seed: fit subsamples the pooled tissue pixels.
    normaliser = StainNormalizer(target=None, random_state=0).fit(slides)
    outputs["stain"] = normaliser.transform(slides)
    outputs["tile"] = Tiler(tile_size=TILE).fit_transform(outputs["stain"])
    outputs["tissue"] = OtsuFilter(min_tissue=0.5).fit_transform(outputs["tile"])
    outputs["tissue_tile"] = OtsuFilter(min_tissue=0.5, mode="tile").fit_transform(
        outputs["tile"]
    )
    outputs["seg"] = segmenter.transform(outputs["tissue"])
    outputs["topk"] = TopKSelector(k=5).fit_transform(outputs["seg"])
    outputs["graph"] = PearsonGraphBuilder(threshold=0.3).fit_transform(outputs["topk"])
    return outputs


def test_dask_backend_spreads_slides_and_equals_one_process(
    client, slide_paths, tiny_segmenter, one_torch_thread
):
    paths, _ = slide_paths
    sequential = _run_steps(paths, tiny_segmenter)
    with (
        distributed.get_task_stream(client) as stream,
        joblib.parallel_config(backend="dask"),
    ):
        spread = _run_steps(paths, tiny_segmenter)

    # Every per-slide step ran on the cluster, over both worker processes.
    workers = {task["worker"] for task in stream.data}
    assert workers == set(client.scheduler_info()["workers"])
    assert len(stream.data) >= 6

    for step, outputs in sequential.items():
        assert_outputs_equal(outputs, spread[step])
    assert sum(len(bag) for bag in spread["seg"]) > 0


def test_dask_backend_runs_a_whole_pipeline_unchanged(
    client, slide_paths, tiny_segmenter, one_torch_thread
):
    paths, labels = slide_paths
    pipe = Pipeline(
        [
            ("stain", StainNormalizer(random_state=0)),
            ("tile", Tiler(tile_size=TILE)),
            ("tissue", OtsuFilter(min_tissue=0.5)),
            ("seg", FrozenEstimator(tiny_segmenter)),
            ("topk", TopKSelector(k=4)),
            ("graph", PearsonGraphBuilder(threshold=0.5)),
            ("gcn", GCNSlideClassifier(hidden_units=8, max_epochs=5, random_state=0)),
        ]
    )
    expected = pipe.fit(paths, labels).predict_proba(paths)
    with joblib.parallel_config(backend="dask"):
        got = pipe.fit(paths, labels).predict_proba(paths)
    np.testing.assert_array_equal(got, expected)


def test_errors_and_warnings_from_workers_reach_the_caller(client, tmp_path):
    import tifffile

    from sklearn_gastric.io import SlideError, write_pyramidal_tiff
    from sklearn_gastric.preprocessing import UnreadableTileWarning

    pixels = np.full((256, 256, 3), (170, 80, 160), dtype=np.uint8)
    path = write_pyramidal_tiff(pixels, tmp_path / "bad.tiff", tile_size=128)
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[1]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * 64)
    bags = Tiler(tile_size=128).transform([path])
    with joblib.parallel_config(backend="dask"):
        with pytest.raises(SlideError, match=r"Slide 'bad.tiff': tile 1 at .*128, 0"):
            OtsuFilter(mode="tile").transform(bags)
        with pytest.warns(UnreadableTileWarning, match=r"'bad.tiff': tile 1 at "):
            (kept,) = OtsuFilter(mode="tile", on_error="skip").transform(bags)
    assert kept.coords.tolist() == [[0, 0], [0, 128], [128, 128]]
