"""scripts/bench_placement.py: which CPUs bench.py's echo rows pin the client and the servers to,
and the pinning of a running server (every thread) that is undone afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_placement import Placement, echo_placements, pinned_servers, process_threads  # noqa: E402


def test_two_cpus_or_more_give_one_shared_cpu_then_two_separate_ones():
    assert echo_placements({3, 1, 2}) == [Placement("client and server on one CPU", 1, 1),
                                          Placement("client and server on two CPUs", 1, 2)]


def test_a_single_cpu_gives_the_shared_placement_alone():
    assert echo_placements({5}) == [Placement("client and server on one CPU", 5, 5)]


# A server stand-in with a second thread: a pin is per thread, so both must move and come back.
TWO_THREADS = """
import sys, threading
threading.Thread(target=sys.stdin.read, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def test_every_thread_of_a_pinned_server_runs_on_the_cpu_and_gets_its_cpus_back():
    server = subprocess.Popen([sys.executable, "-c", TWO_THREADS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline() == "ready\n"
        threads = process_threads(server.pid)
        assert len(threads) == 2
        before = os.sched_getaffinity(server.pid)
        cpu = max(before)
        with pinned_servers([server.pid], cpu):
            assert [os.sched_getaffinity(tid) for tid in threads] == [{cpu}, {cpu}]
        assert [os.sched_getaffinity(tid) for tid in threads] == [before, before]
    finally:
        server.stdin.close()
        server.wait(timeout=10)


def test_a_server_pinned_when_the_block_fails_still_gets_its_cpus_back():
    server = subprocess.Popen([sys.executable, "-c", TWO_THREADS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline() == "ready\n"
        before = os.sched_getaffinity(server.pid)
        failure = RuntimeError("a measurement failed")
        try:
            with pinned_servers([server.pid], min(before)):
                raise failure
        except RuntimeError as error:
            assert error is failure
        assert os.sched_getaffinity(server.pid) == before
    finally:
        server.stdin.close()
        server.wait(timeout=10)
