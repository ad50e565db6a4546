"""Fixtures for the lab tests: each lab runs once per test session (it takes a few seconds against
the real kernel) and the tests check what its result shows.

The labs need root, /dev/net/tun and network namespaces. Missing any of them is a FAILURE with a
message saying what to fix, never a skip: a skipped lab suite would pass having tested nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ustack import labs
from ustack.netns import namespace_exists, namespace_test_problems

_results: dict[str, labs.LabResult] = {}
_LABS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A test that runs a lab needs what the interop tests need (pytest -m "not interop" skips both).
    for item in items:
        if _LABS_DIR in Path(str(item.fspath)).resolve().parents and "require_lab_environment" in item.fixturenames:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def require_lab_environment():
    problems = namespace_test_problems(("ip", "ss", "curl", "nc", "nstat", "sysctl"))
    if problems:
        pytest.fail("the labs cannot run: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def run_lab(require_lab_environment):
    """run_lab(name, ipv6=False) -> LabResult, running each lab (in each family) at most once per session."""

    def run(name: str, ipv6: bool = False) -> labs.LabResult:
        key = f"{name} --ipv6" if ipv6 else name
        if key not in _results:
            result = labs.run(name, labs.LabOptions(ipv6=ipv6))
            assert not namespace_exists(result.namespace), f"{result.namespace} survived the lab"
            _results[key] = result
        return _results[key]

    return run
