"""tests/conform/expected.txt: every script of the FreeBSD suite that does not pass, and why;
tests/conform/expected_linux.txt: the same for Google's Linux scripts against ustack with the
Linux profile (linux_profile.py), both on virtual time, so deterministic.

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

from ustack.conform.linux_profile import linux_difference  # noqa: E402
from ustack.conform.profile import FREEBSD, LINUX, PROFILE_DEFINES, freebsd_deviation  # noqa: E402
from ustack.conform.runner import PASS, run_path  # noqa: E402

from conform.suite_path import LINUX_SUITE, SUITE  # noqa: E402
EXPECTED = Path(__file__).with_name("expected.txt")
LINUX_EXPECTED = Path(__file__).with_name("expected_linux.txt")
HEADER = """\
# Scripts of the FreeBSD tcp-testsuite (../shared/conformance) that do not pass, and why.
# Rewrite after a change in ustack: .venv/bin/python tests/conform/expected_list.py
# script | status | key (unsupported feature, or failing line and what differed) | reason
"""
LINUX_HEADER = """\
# Google's packetdrill scripts for Linux (../shared/conformance/packetdrill-linux/tcp) against ustack
# with the Linux profile (ustack/conform/linux_profile.py): every script that does not pass, and why.
# Rewrite after a change in ustack: .venv/bin/python tests/conform/expected_list.py
# script | status | key (unsupported feature, or failing line and what differed) | reason
"""


def current_results(profile: str = FREEBSD) -> dict[str, tuple[str, str, str]]:
    """script (relative to the suite) -> (status, key, reason), for every script not passing."""
    suite = LINUX_SUITE if profile == LINUX else SUITE
    explain = linux_difference if profile == LINUX else freebsd_deviation
    results = {}
    for path in sorted(suite.rglob("*.pkt")):
        result = run_path(path, PROFILE_DEFINES[profile], profile)
        if result.status == PASS:
            continue
        reason = result.mismatch.reason if result.mismatch else result.reason
        deviation = explain(str(path))  # the profile's explanation of a known difference
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


def write_expected(results: dict, path: Path = EXPECTED, header: str = HEADER) -> None:
    lines = [f"{script} | {status} | {key} | {reason}" for script, (status, key, reason) in sorted(results.items())]
    path.write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    for profile, path, header in ((FREEBSD, EXPECTED, HEADER), (LINUX, LINUX_EXPECTED, LINUX_HEADER)):
        results = current_results(profile)
        write_expected(results, path, header)
        print(f"{path}: {len(results)} scripts that do not pass")
