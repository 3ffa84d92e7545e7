"""The CPU policy of the torch-backed steps: how many torch threads they use,
and how freed activation memory is kept for the next batch.

Threads. Torch's intra-op threads spin while they wait for each other, so
on a machine whose cores are busy with other work (the tile readers, the OS,
other jobs) more threads than free cores is far slower than one: two threads
on a loaded 2-core machine ran ``demo --quick`` 3x slower than one (1.2x
faster on a quiet machine). The policy, :func:`default_torch_threads`: the
``SKLEARN_GASTRIC_TORCH_THREADS`` environment variable where it is set (the
CLI's ``--torch-threads`` sets it, and worker processes inherit it); else
the cores this process may use minus those the tile readers take, and one
on machines of at most two cores. An estimator's ``torch_threads``
parameter overrides both. Every count is at most :data:`MAX_TORCH_THREADS`.

Memory. glibc returns freed blocks of more than a few tens of megabytes to
the operating system, and the next batch's activations of a 512 px tile
(17-67 MB each) are then faulted in again, page by page: on the default
V-Net that cost as much as the convolutions. :func:`keep_freed_memory` asks
glibc, for the duration of an inference, to serve blocks up to 32 MB from
its heap and not to trim it below 1 GB, then trims it when the inference
ends.
"""

import ctypes
import ctypes.util
import operator
import os
import sys
import threading
from contextlib import contextmanager

__all__ = [
    "MAX_TORCH_THREADS",
    "check_torch_threads",
    "default_torch_threads",
    "keep_freed_memory",
    "torch_threads",
]

# mallopt(3) parameters and the values used while an inference runs.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's own maximum for the dynamic threshold
_TRIM_WHILE_INFERRING = 2**30
_TRIM_AFTER = 2 * _MMAP_THRESHOLD  # what glibc's dynamic trim threshold reaches
# Set by the user, these say the allocator is theirs to tune.
_ALLOCATOR_SETTINGS = (
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
OPT_OUT = "SKLEARN_GASTRIC_KEEP_FREED_MEMORY"
THREADS_VARIABLE = "SKLEARN_GASTRIC_TORCH_THREADS"
#: The most torch threads the library sets. More than the logical CPUs of
#: the largest two-socket servers (768), so no machine's cores are refused,
#: and fixed, so that a setting valid on one machine is valid on all. Each
#: torch thread costs two OS threads: 1024 took 50 MB and ran small
#: convolutions 8x slower than one thread on 2 cores, while 100,000 exhaust
#: memory (or the process's thread limit) before any work.
MAX_TORCH_THREADS = 1024

_lock = threading.Lock()
_active = 0


def available_cores():
    """The cores this process may run on (its affinity where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_torch_threads(value, what):
    """``value`` as a count of torch threads, or a ValueError naming ``what``.

    Parameters
    ----------
    value : int or str
        The count, or its text (an environment variable, an option).
    what : str
        What holds it, first in the message, e.g. the variable's name.

    Returns
    -------
    n_threads : int
        From 1 to :data:`MAX_TORCH_THREADS`.

    Examples
    --------
    >>> from sklearn_gastric.utils._cpu import check_torch_threads
    >>> check_torch_threads(" 4 ", "SKLEARN_GASTRIC_TORCH_THREADS")
    4
    >>> check_torch_threads("1.5", "SKLEARN_GASTRIC_TORCH_THREADS")
    Traceback (most recent call last):
    ...
    ValueError: SKLEARN_GASTRIC_TORCH_THREADS must be an integer from 1 to 1024...
    """
    try:
        # Text as int() reads it ("1.5" fails), anything else only if it is an
        # integer (int(1.5) would truncate).
        n_threads = int(value) if isinstance(value, str) else operator.index(value)
    except (TypeError, ValueError):
        n_threads = 0
    if not 1 <= n_threads <= MAX_TORCH_THREADS:
        raise ValueError(
            f"{what} must be an integer from 1 to {MAX_TORCH_THREADS} (torch "
            f"threads); got {value!r}."
        )
    return n_threads


def default_torch_threads(reader_threads=1):
    """The torch threads of the policy: ``SKLEARN_GASTRIC_TORCH_THREADS``
    where set, else the available cores minus the ``reader_threads`` tile
    readers, at least 1, and 1 on at most 2 cores.

    Raises
    ------
    ValueError
        ``SKLEARN_GASTRIC_TORCH_THREADS`` is set but not an integer from 1
        to :data:`MAX_TORCH_THREADS`; the message names it.

    Examples
    --------
    >>> from sklearn_gastric.utils._cpu import default_torch_threads
    >>> default_torch_threads(reader_threads=10_000) >= 1
    True
    """
    chosen = os.environ.get(THREADS_VARIABLE, "")
    if chosen.strip():
        return check_torch_threads(chosen, THREADS_VARIABLE)
    cores = available_cores()
    if cores <= 2:
        return 1
    return max(1, min(MAX_TORCH_THREADS, cores - max(0, reader_threads)))


@contextmanager
def torch_threads(n_threads):
    """Run torch on ``n_threads`` intra-op threads, restoring the count after.

    ``n_threads`` is checked here, where torch gets it, whatever set it (an
    estimator's parameter changed after ``fit`` included).
    """
    import torch

    n_threads = check_torch_threads(n_threads, "torch_threads")
    before = torch.get_num_threads()
    if n_threads != before:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _glibc():
    """glibc's handle, or None on another C library or when opted out."""
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT) == "0":
        return None
    if any(name in os.environ for name in _ALLOCATOR_SETTINGS):
        return None
    if any(name in os.environ.get("LD_PRELOAD", "") for name in _OTHER_ALLOCATORS):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (raises on musl and others)
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def keep_freed_memory():
    """Keep freed activation memory in the heap while the block runs.

    Nested and concurrent uses share one setting; the last to leave trims
    the heap. A no-op off glibc, when the user tunes the allocator
    (``MALLOC_*_`` or ``GLIBC_TUNABLES`` set, jemalloc, tcmalloc or mimalloc
    preloaded), or when ``SKLEARN_GASTRIC_KEEP_FREED_MEMORY=0``.
    """
    global _active
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _active += 1
        if _active == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_WHILE_INFERRING)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_AFTER)
                libc.malloc_trim(0)
