"""The FreeBSD suite against ustack: the list of scripts that do not pass must be exactly right.

A script that passed and now fails, or fails differently, is a regression; a script that now
passes, or a list entry for a script that is gone, means the list is out of date. Either way the
test fails and says which; tests/conform/expected_list.py rewrites the list.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conform.suite_path import needs_linux_suite, needs_suite
from conform.expected_list import EXPECTED, EXPECTED6, LINUX_EXPECTED, LINUX_SUITE, SUITE, SUITE6, current_results, read_expected
from ustack.conform.profile import LINUX
from ustack.conform.lexer import ParseError
from ustack.conform.parser import parse_text
from ustack.conform.runner import PASS, run_path, run_script

OURS = Path(__file__).with_name("ours")


@needs_suite
@pytest.mark.parametrize(("suite", "expected_path"), ((SUITE, EXPECTED), (SUITE6, EXPECTED6)), ids=("ipv4", "ipv6"))
def test_the_expected_list_is_exactly_what_does_not_pass(suite, expected_path):
    compare(read_expected(expected_path), current_results(suite), expected_path)


@needs_linux_suite
def test_the_linux_expected_list_is_exactly_what_does_not_pass():
    """The Linux scripts against ustack with the Linux profile (virtual time, deterministic)."""
    compare(read_expected(LINUX_EXPECTED), current_results(LINUX_SUITE, LINUX), LINUX_EXPECTED)


def compare(expected: dict, actual: dict, listed: Path) -> None:
    problems = []
    for script in sorted(set(expected) | set(actual)):
        want = expected.get(script)
        got = actual.get(script)
        if want is None:
            problems.append(f"REGRESSION {script}: passed before, now {got[0]} ({got[1]}): {got[2]}")
        elif got is None:
            problems.append(f"NOW PASSES {script}: remove it from {listed.name}")
        elif want[:2] != got[:2]:
            problems.append(f"CHANGED {script}: listed as {want[0]} ({want[1]}), now {got[0]} ({got[1]}): {got[2]}")
    assert not problems, f"{len(problems)} differences from {listed}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", sorted(OURS.glob("*.pkt")), ids=lambda path: path.name)
def test_our_scripts_pass(path):
    result = run_path(path)
    assert result.status == PASS, result.text()


@needs_suite
def test_damaged_scripts_give_a_result_never_a_traceback():
    """Scripts with one line removed: whatever happens is a pass, fail, skip or parse error."""
    seed = 20261121
    chooser = random.Random(seed)
    paths = sorted(SUITE.rglob("*.pkt"))
    for _ in range(300):
        path = chooser.choice(paths)
        lines = path.read_text().split("\n")
        index = chooser.randrange(len(lines))
        variant = "\n".join(lines[:index] + lines[index + 1 :])
        try:
            script = parse_text(variant, str(path))
        except ParseError:
            continue
        try:
            run_script(script)
        except Exception as error:  # noqa: BLE001 - the point is that nothing escapes
            raise AssertionError(f"seed {seed}: {path} without line {index + 1}: {error!r}") from error
