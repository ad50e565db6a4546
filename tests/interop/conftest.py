"""Fixtures for the interop tests: the real Linux kernel as ustack's peer, inside a network
namespace the test creates and always removes (NETWORK SAFETY: no packet leaves it).

    def test_something(tun_in_namespace):
        setup = tun_in_namespace                 # kernel at 10.77.0.1/24, ustack is 10.77.0.2
        setup.link                               # PcapWriter(TunLink): give this to the stack
        setup.namespace.popen(["curl", ...])     # a program inside the namespace, killed at the end

Every test using tun_in_namespace records a pcap of the link; when the test fails it is kept as
test-artifacts/<test name>.pcap (open it with `tcpdump -nn -r` or `ustack decode`).

These tests need root, /dev/net/tun and namespaces. Missing any of them is a FAILURE with a
message saying what to fix, never a skip: a skipped interop suite would pass CI having tested
nothing.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from interop_helpers import opened_namespace, run_directory, ustack_serve  # noqa: F401 (fixtures for every test here)

from ustack.link import PcapWriter, TunLink
from ustack.netns import Namespace, NamespaceError, namespace_test_problems, setup_tun_in_namespace

from ustack.network import KERNEL_ADDRESS as HOST_ADDRESS  # the kernel's side of the TUN, in the namespace
from ustack.network import KERNEL_INTERFACE as HOST_INTERFACE
from ustack.network import TUN_NAME
from ustack.network import USTACK_ADDRESS as STACK_ADDRESS  # ustack's own address

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_INTEROP_DIR = Path(__file__).resolve().parent
_namespace_numbers = itertools.count()


def unique_namespace_name() -> str:
    """ust-t-<pid>-<n>: unique across the helpers and CI jobs sharing this machine."""
    return f"ust-t-{os.getpid()}-{next(_namespace_numbers)}"


def interop_problems() -> list[str]:
    """What keeps the interop tests from running here, each as a fix-it sentence."""
    problems = namespace_test_problems(("ip", "ping", "tcpdump"), " (./scripts/test installs it)")
    if not problems:
        probe = Namespace(unique_namespace_name())
        try:
            probe.open()
        except NamespaceError as error:
            problems.append(f"network namespaces cannot be created: {error}")
        finally:
            probe.close()
    return problems


# --- markers and reports -----------------------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    # Everything under tests/interop is an interop test (pytest -m "not interop" leaves it out).
    for item in items:
        if _INTEROP_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Remember each phase's report on the test item, so fixtures can see in their teardown
    # whether the test failed (and keep its pcap).
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _test_failed(node) -> bool:
    return any(
        getattr(getattr(node, f"report_{phase}", None), "failed", False) for phase in ("setup", "call")
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def require_interop_environment():
    problems = interop_problems()
    if problems:
        pytest.fail("interop tests cannot run: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def namespace_name():
    """A callable giving unused names ust-t-<pid>-<n>, for tests that manage Namespace themselves."""
    return unique_namespace_name


@pytest.fixture
def namespace(require_interop_environment):
    """A fresh namespace ust-t-<pid>-<n>, removed in teardown whatever the test did."""
    yield from opened_namespace(unique_namespace_name())


@pytest.fixture
def interop_pcap(request, tmp_path):
    """The path of this test's pcap; copied to test-artifacts/ if the test fails."""
    path = tmp_path / "link.pcap"
    yield path
    if _test_failed(request.node) and path.exists():
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
        kept = ARTIFACTS / f"{name}.pcap"
        shutil.copyfile(path, kept)
        print(f"\npcap of the failed test kept in {kept}")


@dataclass
class TunSetup:
    namespace: Namespace
    link: PcapWriter  # the link to give the stack: records into `pcap_path`
    tun: TunLink  # the device underneath (name, fd, counters)
    pcap_path: Path
    host_address: str = HOST_ADDRESS
    stack_address: str = STACK_ADDRESS


@pytest.fixture
def tun_in_namespace(namespace, interop_pcap):
    """A TUN inside `namespace`: kernel side 10.77.0.1/24 and up, ustack's address 10.77.0.2."""
    tun = setup_tun_in_namespace(namespace, TUN_NAME, mtu=1500, host_address=HOST_INTERFACE,
                                 peer_address=STACK_ADDRESS)
    link = PcapWriter(tun, interop_pcap)
    try:
        yield TunSetup(namespace, link, tun, interop_pcap)
    finally:
        link.close()  # before interop_pcap's teardown reads the file
