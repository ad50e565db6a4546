"""scripts/bench.py's server CPU rows (per connection, per MB, per echo) read each server's CPU
time with `process_cpu_seconds`. An echo row costs serve only ~40-140 ms, so the reading must be
far finer than /proc/PID/stat's 10 ms ticks: here it must agree with a process's own clock to
within 2 ms, three times over (ticks would miss by up to 10 ms each time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench import process_cpu_seconds  # noqa: E402

# Spins until its own CPU clock passes argv[1] seconds, says it, then waits on stdin using none.
BURNER = """
import sys, time
target = float(sys.argv[1])
while time.process_time() < target:
    pass
print(time.process_time(), flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("seconds", [0.0213, 0.0347, 0.0471])
def test_a_process_cpu_time_is_read_to_the_millisecond(seconds):
    burner = subprocess.Popen([sys.executable, "-c", BURNER, str(seconds)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        own_clock = float(burner.stdout.readline())
        measured = process_cpu_seconds(burner.pid)
    finally:
        burner.stdin.close()
        burner.wait(timeout=10)
    assert own_clock >= seconds
    assert abs(measured - own_clock) < 0.002, (measured, own_clock)


def test_a_process_already_gone_counts_nothing():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(timeout=10)
    assert process_cpu_seconds(finished.pid) == 0.0
