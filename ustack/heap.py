"""glibc's heap settings for a process that moves bulk data (`ustack serve`, issue 12).

A bulk transfer keeps about a send buffer's worth of 64 KB bytes objects alive at a time (the
file chunks the HTTP app wrote, held until acknowledged: ustack/tcp/send_buffer.py) and frees
them oldest first. With glibc's defaults, every time the free space at the top of the heap grows
past 128 KB the heap is given back to the kernel (brk), and taken again a moment later: each page
then costs a page fault and the kernel zeroing it: on a download at MTU 1500 with offload,
serve's kernel time was ~1.2 ms per MB that way against ~0.45 with this setting. Keeping up to
TRIM_THRESHOLD of free heap for reuse avoids it. Setting a threshold turns off glibc's own
adjustment of the mmap threshold, so that one is set too, where that adjustment would have taken
it for the 1 MiB buffers (below it, they come from the heap and are reused as well).

Memory a finished transfer freed stays in the process, up to TRIM_THRESHOLD, for the next one.
Not glibc (musl, macOS): nothing is changed.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 32 << 20  # free heap kept for reuse before any is given back
MMAP_THRESHOLD = 4 << 20  # allocations from this size on get their own mapping


def keep_freed_heap_for_reuse() -> bool:
    """Set the thresholds above for this process; False where malloc is not glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
