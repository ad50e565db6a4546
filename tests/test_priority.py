"""ustack/priority.py: serve runs a few nice levels above its clients (issue 12, no-offload download)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from ustack import priority
from ustack.priority import NICE_RANGE, STACK_RENICE, run_ahead_of_clients

RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"


def in_a_thread(function):
    """Run `function` in a new thread and return what it returned: Linux keeps the nice value per
    thread, so the test runner's own priority is left as it was."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join(timeout=10)
    assert result, "the thread did not finish"
    return result[0]


def thread_nice_after(increment):
    return run_ahead_of_clients(increment), os.getpriority(os.PRIO_PROCESS, 0)


# Lowering a nice value needs CAP_SYS_NICE: these run as root, as the whole suite does.
def test_the_stack_thread_runs_the_given_levels_above_where_it_started():
    before = os.getpriority(os.PRIO_PROCESS, 0)
    returned, after = in_a_thread(lambda: thread_nice_after(-3))
    expected = max(before - 3, NICE_RANGE[0])
    assert (returned, after) == (expected, expected)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the caller's thread only


def test_an_increment_past_the_range_is_clamped_to_the_highest_priority():
    assert in_a_thread(lambda: thread_nice_after(-100)) == (NICE_RANGE[0], NICE_RANGE[0])


def test_zero_changes_nothing_and_a_refusal_leaves_the_priority_as_it_was(monkeypatch):
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert in_a_thread(lambda: thread_nice_after(0)) == (before, before)

    def refuse(which, who, value):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(priority.os, "setpriority", refuse)
    assert in_a_thread(lambda: thread_nice_after(STACK_RENICE)) == (None, before)


@pytest.mark.parametrize("value, complaint", [
    ("high", "renice must be a whole number, not 'high'"),
    ("-40", "renice -40 is outside -39..39"),
])
def test_a_bad_renice_is_one_line_and_exit_2(value, complaint):
    result = subprocess.run([sys.executable, "-c", RUN_CLI, "serve", "--renice", value],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and complaint in result.stderr, result.stderr
