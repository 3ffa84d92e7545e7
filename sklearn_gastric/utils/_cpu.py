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
parameter overrides both.

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
import os
import sys
import threading
from contextlib import contextmanager

__all__ = ["default_torch_threads", "keep_freed_memory", "torch_threads"]

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

_lock = threading.Lock()
_active = 0


def available_cores():
    """The cores this process may run on (its affinity where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_torch_threads(reader_threads=1):
    """The torch threads of the policy: ``SKLEARN_GASTRIC_TORCH_THREADS``
    where set, else the available cores minus the ``reader_threads`` tile
    readers, at least 1, and 1 on at most 2 cores.

    Examples
    --------
    >>> from sklearn_gastric.utils._cpu import default_torch_threads
    >>> default_torch_threads(reader_threads=10_000) >= 1
    True
    """
    chosen = os.environ.get(THREADS_VARIABLE, "").strip()
    if chosen:
        try:
            value = int(chosen)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(
                f"{THREADS_VARIABLE} must be a positive integer; got {chosen!r}."
            )
        return value
    cores = available_cores()
    if cores <= 2:
        return 1
    return max(1, cores - max(0, reader_threads))


@contextmanager
def torch_threads(n_threads):
    """Run torch on ``n_threads`` intra-op threads, restoring the count after."""
    import torch

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
