"""Giving freed memory back to the system (glibc's allocator, on Linux).

By default glibc serves large allocations from mmap only until one is freed, then raises its
threshold to that size, so a server that once parsed a few 8 MB chatflows keeps taking their like
from its heap, where freeing them rarely shrinks the process. A fixed threshold keeps big blocks
(request bodies, flowData, long answers) in mmap, so freeing one returns it at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger("streamwise")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024


def return_big_blocks() -> bool:
    """Fix glibc's mmap and trim thresholds; False where there is no glibc (nothing to do then)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        logger.debug("mallopt refused the thresholds")
    return ok
