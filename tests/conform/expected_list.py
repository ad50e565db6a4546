"""tests/conform/expected.txt (and expected_ipv6.txt, for the suite's IPv6 variants): every script
of the FreeBSD suite that does not pass, and why.

    .venv/bin/python tests/conform/expected_list.py        rewrite both files from a fresh run

One line per script that fails, is skipped or does not parse:

    script | status | key | reason

`key` is short and stable (the unsupported feature, or the failing line and what differed); the
test compares path, status and key, and shows the reason only to help the reader.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ustack.conform.profile import freebsd_deviation  # noqa: E402
from ustack.conform.runner import PASS, run_path  # noqa: E402

from conform.suite_path import SUITE, SUITE6  # noqa: E402
EXPECTED = Path(__file__).with_name("expected.txt")
EXPECTED6 = Path(__file__).with_name("expected_ipv6.txt")
# (suite, its expected list): the IPv4 scripts and their IPv6 variants.
SUITES = ((SUITE, EXPECTED), (SUITE6, EXPECTED6))
HEADER = """\
# Scripts of the FreeBSD tcp-testsuite (../shared/conformance) that do not pass, and why.
# Rewrite after a change in ustack: .venv/bin/python tests/conform/expected_list.py
# script | status | key (unsupported feature, or failing line and what differed) | reason
"""


def current_results(suite: Path = SUITE) -> dict[str, tuple[str, str, str]]:
    """script (relative to the suite) -> (status, key, reason), for every script not passing."""
    results = {}
    for path in sorted(suite.rglob("*.pkt")):
        result = run_path(path)
        if result.status == PASS:
            continue
        reason = result.mismatch.reason if result.mismatch else result.reason
        deviation = freebsd_deviation(str(path))  # FreeBSD behaviour against RFC 9293 (profile.py)
        if deviation:
            reason = f"{deviation}. Runner: {reason}"
        results[str(path.relative_to(suite))] = (result.status, result.key, " ".join(reason.split()))
    return results


def read_expected(path: Path = EXPECTED) -> dict[str, tuple[str, str, str]]:
    expected = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        script, status, key, reason = (part.strip() for part in line.split(" | ", 3))
        expected[script] = (status, key, reason)
    return expected


def write_expected(results: dict, path: Path = EXPECTED) -> None:
    lines = [f"{script} | {status} | {key} | {reason}" for script, (status, key, reason) in sorted(results.items())]
    path.write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    for suite, expected in SUITES:
        results = current_results(suite)
        write_expected(results, expected)
        print(f"{expected}: {len(results)} scripts that do not pass")
