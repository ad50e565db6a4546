"""kernel_thread.py: where the kernel backend makes its calls (root, network namespaces: a missing
one is a failure, never a skip)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from ustack.conform.kernel_thread import (
    CallBlocked,
    network_namespace_entered,
    realtime_scheduling,
    time_limit,
)
from ustack.netns import Namespace, namespace_test_problems


@pytest.fixture(scope="module", autouse=True)
def namespaces_can_be_made():
    problems = namespace_test_problems(("ip",), " (./scripts/test installs it)")
    if problems:
        pytest.fail("kernel_thread tests cannot run: " + "; ".join(problems), pytrace=False)


def current_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_the_main_thread_enters_the_namespace_and_comes_back():
    home = current_namespace()
    with Namespace(f"ust-kt-{os.getpid()}") as namespace:
        inside = os.stat(f"/run/netns/{namespace.name}").st_ino
        with network_namespace_entered(f"/run/netns/{namespace.name}"):
            assert current_namespace() == inside
            # A thread started here is in the namespace too (SyscallThread relies on it).
            seen = []
            thread = threading.Thread(target=lambda: seen.append(current_namespace()))
            thread.start()
            thread.join()
            assert seen == [inside]
        assert current_namespace() == home


def test_the_namespace_is_left_also_when_the_block_raises():
    home = current_namespace()
    with Namespace(f"ust-kt-{os.getpid()}") as namespace:
        with pytest.raises(RuntimeError):
            with network_namespace_entered(f"/run/netns/{namespace.name}"):
                raise RuntimeError("a script failed")
    assert current_namespace() == home


def test_a_call_that_blocks_is_cut_off_by_the_time_limit():
    left, right = socket.socketpair()
    try:
        with pytest.raises(CallBlocked):
            with time_limit(0.05):
                left.recv(1)  # nothing ever comes
    finally:
        left.close()
        right.close()


def test_realtime_scheduling_is_given_back():
    before = os.sched_getscheduler(0)
    with realtime_scheduling(True):
        assert os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
    assert os.sched_getscheduler(0) == before
    with realtime_scheduling(False):
        assert os.sched_getscheduler(0) == before
