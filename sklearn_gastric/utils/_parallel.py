"""Per-slide parallelism: joblib for the work, tqdm for the progress bar."""

from joblib import Parallel, delayed


def map_slides(func, items, *, n_jobs=None, verbose=0, desc=None):
    """Apply ``func`` to every item through joblib, keeping the input order.

    Running through :class:`joblib.Parallel` means that
    ``joblib.parallel_config(backend="dask")`` spreads the items over a
    ``dask.distributed`` cluster with no change here.

    Parameters
    ----------
    func : callable
        A picklable callable of one argument.
    items : iterable
        The inputs, one per slide.
    n_jobs : int, default=None
        Number of joblib workers; ``None`` means 1 unless a
        :func:`joblib.parallel_config` context says otherwise.
    verbose : int or bool, default=0
        Show a tqdm progress bar when truthy.
    desc : str, default=None
        The progress bar's label.

    Returns
    -------
    results : list
        ``func(item)`` for every item, in order.
    """
    items = list(items)
    if n_jobs in (None, 1) and not _backend_is_configured():
        iterator = map(func, items)
    else:
        iterator = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(func)(item) for item in items
        )
    if not verbose:
        return list(iterator)
    from tqdm.auto import tqdm  # not at import: it is only for the bar

    return list(tqdm(iterator, total=len(items), desc=desc))


def _backend_is_configured():
    """Whether the caller set a joblib backend (dask, ray, ...) explicitly."""
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return type(backend).__name__ not in ("LokyBackend", "SequentialBackend")
