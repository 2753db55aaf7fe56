"""The inference process tunes glibc's malloc for large tensors (this machine runs glibc)."""

from __future__ import annotations

import ctypes

from beamops.inference.malloc_tuning import tune_malloc


def test_malloc_is_tuned_on_glibc():
    assert hasattr(ctypes.CDLL("libc.so.6"), "gnu_get_libc_version")  # the premise: glibc is the C library
    assert tune_malloc() is True
