"""AsyncStack's asyncio API over IPv6: `family=AF_INET6`, servers on "::" or an IPv6 address, local_addr
with the host's IPv6 address, and the 4-tuples asyncio gives. Two dual-stack hosts over a memory link."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import asynccontextmanager

import pytest
from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG, run_async

from ustack.aio import AsyncStack
from ustack.link import MemoryLink
from ustack.stack import Stack
from ustack.wire.ipv4 import address_value

A6, B6 = "fd00:77::1", "fd00:77::2"


@asynccontextmanager
async def dual_stack_pair(seed):
    link_a, link_b = MemoryLink.pair()
    host_a = Stack(address_value(A_ADDRESS), FAST_CONFIG, address6=A6, mtu=link_a.mtu, port_seed=seed)
    host_b = Stack(address_value(B_ADDRESS), FAST_CONFIG, address6=B6, mtu=link_b.mtu, port_seed=seed + 1)
    try:
        async with AsyncStack(host_a, link_a) as a, AsyncStack(host_b, link_b) as b:
            yield a, b
    finally:
        link_a.close()
        link_b.close()


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@run_async
async def test_family_af_inet6_and_servers_on_ipv6_addresses(seed):
    async with dual_stack_pair(seed) as (a, b):
        any_server = await b.start_server(echo, "::", 7, family=socket.AF_INET6)
        own_server = await b.start_server(echo, B6, 8, family=socket.AF_INET6)
        assert own_server.sockets[0].getsockname() == (B6, 8, 0, 0)
        for port in (7, 8):
            reader, writer = await a.open_connection(B6, port, family=socket.AF_INET6, local_addr=(A6, 0))
            assert writer.get_extra_info("peername") == (B6, port, 0, 0)
            assert writer.get_extra_info("sockname")[0] == A6
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            writer.close()
        # As asyncio's create_server, which sets IPV6_V6ONLY on its AF_INET6 sockets: the server
        # on "::" is IPv6 only, shown as ("::", port, 0, 0); neither takes IPv4.
        assert any_server.sockets[0].getsockname() == ("::", 7, 0, 0)
        assert any_server.sockets[0].family == socket.AF_INET6
        for port in (7, 8):
            with pytest.raises(ConnectionRefusedError):
                await a.open_connection(B_ADDRESS, port)
        with pytest.raises(OSError) as raised:
            await a.open_connection(B6, 7, local_addr=("fd00:99::1", 0))
        assert raised.value.errno == 99  # EADDRNOTAVAIL: not one of A's addresses
        with pytest.raises(socket.gaierror):
            await a.open_connection(B6, 7, family=socket.AF_INET)
        any_server.close()
        own_server.close()


async def servers_and_reach(start_server, open_connection, four: str, six: str) -> dict:
    """For a server on each host ("::", "0.0.0.0", None): its sockets' names and families, and
    whether a client reaches it over IPv4 (`four`) and over IPv6 (`six`). The same code for
    asyncio's own servers (in KERNEL_SERVERS) and for ustack's."""
    answers = {}
    for port, host in ((7100, "::"), (7101, "0.0.0.0"), (7102, None)):
        server = await start_server(echo, host, port)
        reached = []
        for peer in (four, six):
            try:
                _, writer = await open_connection(peer, port)
                writer.close()
                reached.append(True)
            except OSError:
                reached.append(False)
        answers[str(host)] = {"sockets": sorted([list(s.getsockname()), int(s.family)] for s in server.sockets),
                              "ipv4": reached[0], "ipv6": reached[1]}
        server.close()
    return answers


# asyncio's own servers, in a private network namespace (unshare --net; loopback only), with this
# process's import path so that it imports this module.
KERNEL_SERVERS = r"""
import asyncio, json, subprocess
from test_asyncio_ipv6 import servers_and_reach
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
print(json.dumps(asyncio.run(servers_and_reach(asyncio.start_server, asyncio.open_connection, "127.0.0.1", "::1"))))
"""


def test_servers_on_each_host_take_the_families_asyncio_servers_take(seed):
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", KERNEL_SERVERS],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"the kernel's side failed (needs root for unshare --net): {result.stderr}"
    kernel = json.loads(result.stdout)
    # What asyncio does (base_events.create_server sets IPV6_V6ONLY on each AF_INET6 socket):
    assert kernel["::"] == {"sockets": [[["::", 7100, 0, 0], socket.AF_INET6]], "ipv4": False, "ipv6": True}
    assert kernel["None"]["ipv4"] and kernel["None"]["ipv6"] and len(kernel["None"]["sockets"]) == 2

    @run_async
    async def ours():
        async with dual_stack_pair(seed) as (a, b):
            return await servers_and_reach(b.start_server, a.open_connection, B_ADDRESS, B6)

    assert ours() == kernel
