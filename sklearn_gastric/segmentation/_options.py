"""The inference settings a PatchSegmenter accepts, with no torch import (the
command line's parser offers them as choices)."""

__all__ = ["ENGINES", "NETWORK_PRECISIONS", "PRECISIONS"]

ENGINES = ("torch", "openvino")
# What an inference network computes in, and what ``precision`` accepts:
# those, or "auto" (bfloat16 on CUDA, float32 elsewhere).
NETWORK_PRECISIONS = ("float32", "bfloat16")
PRECISIONS = ("auto", *NETWORK_PRECISIONS)
