"""ustack/heap.py: glibc's heap thresholds for serve (bulk transfers, issue 12)."""

from __future__ import annotations

import platform
import subprocess
import sys


def test_serve_keeps_freed_heap_where_malloc_is_glibc():
    # In a child process: the settings are process-wide, and this one runs the other tests.
    code = "from ustack.heap import keep_freed_heap_for_reuse; print(keep_freed_heap_for_reuse())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    expected = platform.libc_ver()[0] == "glibc"
    assert result.stdout.strip() == str(expected)
