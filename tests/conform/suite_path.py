"""Where the FreeBSD packetdrill suite is: ../shared/conformance beside the repository (as in CI),
or wherever USTACK_CONFORMANCE_SUITE points (for a clone of github.com/freebsd-net/tcp-testsuite)."""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SUITE = Path(
    os.environ.get("USTACK_CONFORMANCE_SUITE", REPOSITORY.parent / "shared" / "conformance" / "freebsd-tcp-testsuite")
)
# Google's packetdrill scripts for Linux, beside the FreeBSD suite (or USTACK_LINUX_SUITE).
LINUX_SUITE = Path(
    os.environ.get("USTACK_LINUX_SUITE", SUITE.parent / "packetdrill-linux" / "tcp")
)

# The same suite's IPv6 variants (--ip_version=ipv6), beside it; USTACK_CONFORMANCE_SUITE_IPV6 elsewhere.
SUITE6 = Path(
    os.environ.get("USTACK_CONFORMANCE_SUITE_IPV6", REPOSITORY.parent / "shared" / "conformance" / "freebsd-tcp-testsuite-ipv6")
)

import pytest  # noqa: E402

# Outside CI a machine without the suite skips these tests; in CI (CI=true) the suite is always
# beside the repository, so a missing suite must fail loudly rather than skip quietly.
needs_suite = pytest.mark.skipif(
    not (SUITE.is_dir() and SUITE6.is_dir()) and not os.environ.get("CI"),
    reason=f"the FreeBSD suite is not at {SUITE} (set USTACK_CONFORMANCE_SUITE)",
)

needs_linux_suite = pytest.mark.skipif(
    not LINUX_SUITE.is_dir() and not os.environ.get("CI"),
    reason=f"the Linux packetdrill scripts are not at {LINUX_SUITE} (set USTACK_LINUX_SUITE)",
)
