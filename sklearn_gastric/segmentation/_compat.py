"""What keeps older PatchSegmenter pickles and parameter names working."""

import warnings

__all__ = ["RenamedParameters"]


class RenamedParameters:
    """Mixin of :class:`PatchSegmenter`: the deprecated ``n_jobs`` (now
    ``reader_threads``) and the defaults of parameters that pickles made
    before them lack."""

    def _reader_threads(self):
        """``reader_threads``, or the deprecated ``n_jobs`` where it is set."""
        if self.n_jobs in ("deprecated", None):
            return self.reader_threads
        return self.n_jobs

    def _warn_if_n_jobs_is_set(self):
        # None, the former default, is what older model files and pickles hold.
        if self.n_jobs not in ("deprecated", None):
            warnings.warn(
                "PatchSegmenter: n_jobs was renamed reader_threads in 0.1 (it "
                "counts the threads reading tiles, not joblib workers) and will "
                "be removed in 0.3; set reader_threads instead.",
                FutureWarning,
                stacklevel=3,
            )

    def __setstate__(self, state):
        # Pickles made before these parameters existed (0.1.0.dev0).
        defaults = {
            "reader_threads": None,
            "torch_threads": None,
            "precision": "auto",
            "engine": "torch",
        }
        super().__setstate__({**defaults, **state})
