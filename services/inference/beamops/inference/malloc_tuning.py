"""Process-wide malloc settings for a gateway that moves large tensors (glibc only).

Every Predict with a large tensor allocates several buffers of the tensor's size (the request
bytes, the Triton request, its serialization, the answer, ...). glibc serves allocations above
its mmap threshold with fresh ``mmap`` pages and gives them back on free, so each buffer costs a
page fault per 4 KiB touched: serializing a 1 MB message took 1.6 ms that way on the benchmark
machine, and 0.12 ms with the settings below (buffers reused from the heap). The price is up
to ``TRIM_THRESHOLD`` bytes of freed heap kept by the process.

Called by ``server.main()`` (the service's own process), not by ``create_server`` (tests run
many servers in one process and need no tuning).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # allocations below this come from the heap (glibc's maximum)
TRIM_THRESHOLD = 128 << 20  # free heap kept before it is given back to the system


def tune_malloc() -> bool:
    """Applies the settings; False (and nothing changed) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and \
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not done:
        log.warning("could not tune malloc for large tensors")
    return done
