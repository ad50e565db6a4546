"""scripts/bench_serve_calls.py refuses arguments it cannot measure with one line each, before it
makes any namespace or starts serve (its measurement itself runs by hand, as root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_serve_calls.py"


@pytest.mark.parametrize("arguments, said", [
    (("--upload", "0"), "--requests and --upload must be at least 1, --top not negative"),
    (("--requests", "0"), "--requests and --upload must be at least 1, --top not negative"),
    (("--echo", "--upload", "10"), "not allowed with argument"),
])
def test_a_wrong_argument_gets_one_line_and_no_run(arguments, said):
    result = subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert said in last and "Traceback" not in result.stderr, result.stderr
