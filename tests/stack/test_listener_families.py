"""Listeners of both families on one port, as Linux has them: an AF_INET listener and an AF_INET6
IPV6_V6ONLY one share a port and each takes its own family; a dual-stack one (AF_INET6 without
V6ONLY) clashes with either (EADDRINUSE); `ss` shows them as "0.0.0.0:P", "[::]:P" and "*:P".

Every rule is checked against the kernel: the same socket calls run in a private network
namespace of their own (unshare --net: nothing leaves it, and it ends with the process), and
ustack's answers must equal the kernel's."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import pytest

from test_sock import HANG_GUARD
from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG
from ustack import sock
from ustack.commands.ss import describe
from ustack.control import to_jsonable
from ustack.link import MemoryLink
from ustack.stack import Stack, StackError
from ustack.wire.ipv4 import address_value
from ustack.wire.ipv6 import address6_value

A6, B6 = "fd00:77::1", "fd00:77::2"

# Each scene: the sockets to open one after the other on one port, as (family, V6ONLY).
FOUR, SIX_ONLY, DUAL = (socket.AF_INET, 0), (socket.AF_INET6, 1), (socket.AF_INET6, 0)
SCENES = {
    "IPv4 then IPv6-only": [FOUR, SIX_ONLY],
    "IPv6-only then IPv4": [SIX_ONLY, FOUR],
    "dual then IPv4": [DUAL, FOUR],
    "IPv4 then dual": [FOUR, DUAL],
    "IPv6-only then dual": [SIX_ONLY, DUAL],
    "dual then IPv6-only": [DUAL, SIX_ONLY],
}

def open_listeners(make_socket, v6only_option: tuple[int, int]) -> tuple[dict, list]:
    """For each scene, bind + listen each of its sockets on one port: the errno of each (0 when it
    listens), and the listening sockets. The same code for the kernel's sockets (socket.socket,
    in KERNEL_PROGRAM) and for ustack's (network.socket)."""
    results, kept = {}, []
    for number, (name, sockets) in enumerate(SCENES.items()):
        port, errors = 7000 + number, []
        for family, v6only in sockets:
            s = make_socket(family)
            if family == socket.AF_INET6:
                s.setsockopt(*v6only_option, v6only)
            try:
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
                s.listen()
                kept.append(s)
                errors.append(0)
            except OSError as error:
                errors.append(error.errno)
                s.close()
        results[name] = errors
    return results, kept


# Run in the kernel's namespace (with this process's import path, so that it imports this module): the same
# listeners on the kernel's sockets, then the Local column of `ss` for the listeners.
KERNEL_PROGRAM = r"""
import json, socket, subprocess
from test_listener_families import open_listeners
errors, kept = open_listeners(socket.socket, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
ss = subprocess.run(["ss", "-tanH", "state", "listening"], capture_output=True, text=True, check=True).stdout
print(json.dumps({"errors": errors, "ss": sorted(line.split()[2] for line in ss.splitlines())}))
"""


def kernel_answers() -> dict:
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", KERNEL_PROGRAM],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"the kernel's side failed (needs root for unshare --net): {result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture
def network():
    memory_a, memory_b = MemoryLink.pair()
    stack = Stack(address_value(B_ADDRESS), FAST_CONFIG, address6=B6, mtu=memory_b.mtu, port_seed=7)
    network = sock.Network(stack, memory_b, default_timeout=HANG_GUARD)
    try:
        yield network
    finally:
        network.close()
        memory_a.close()
        memory_b.close()


def ustack_answers(network) -> dict:
    errors, kept = open_listeners(network.socket, (sock.IPPROTO_IPV6, sock.IPV6_V6ONLY))
    rows = [describe(to_jsonable(snapshot), {}) for snapshot in network.snapshots()]
    shown = sorted(row["cells"][3] for row in rows if row["linux_state"] == "LISTEN")
    for s in kept:
        s.close()
    return {"errors": errors, "ss": shown}


def test_which_listeners_share_a_port_and_how_ss_shows_them_match_the_kernel(network):
    kernel = kernel_answers()
    # What the kernel says, spelled out (so a change of the kernel's rules shows here too).
    assert kernel["errors"]["IPv4 then IPv6-only"] == [0, 0]
    assert kernel["errors"]["dual then IPv4"] == [0, errno.EADDRINUSE]
    assert "*:7002" in kernel["ss"] and "[::]:7000" in kernel["ss"] and "0.0.0.0:7000" in kernel["ss"]
    assert ustack_answers(network) == kernel


def test_each_family_reaches_its_own_listener_on_a_shared_port():
    """Demultiplexing: with an IPv4 and an IPv6 listener on port 80, a SYN goes to its family's."""
    stack = Stack(address_value(B_ADDRESS), FAST_CONFIG, address6=B6, mtu=1500)
    four = stack.listen(80, address=address_value(B_ADDRESS), any_address=True)
    six = stack.listen(80, address=address6_value(B6), any_address=True)
    assert (four.listening_on, six.listening_on) == ("0.0.0.0", "::")
    with pytest.raises(StackError) as clash:
        stack.listen(80)  # dual-stack: overlaps both
    assert clash.value.errno == errno.EADDRINUSE
    client = Stack(address_value(A_ADDRESS), FAST_CONFIG, address6=A6, mtu=1500)
    for listener, server in ((four, B_ADDRESS), (six, B6)):
        client.connect(address6_value(server) if ":" in server else address_value(server), 80, now=0.0)
        for packet in client.transmit(0.0):
            stack.receive(packet, 0.0)
        assert len(listener.syn_queue) == 1, server
    assert len(four.syn_queue) == len(six.syn_queue) == 1
