"""AsyncStack's asyncio API over IPv6: `family=AF_INET6`, servers on "::" or an IPv6 address, local_addr
with the host's IPv6 address, and the 4-tuples asyncio gives. Two dual-stack hosts over a memory link."""

from __future__ import annotations

import socket
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
        # The server on "::" takes IPv4 too (ustack's listeners are dual-stack); the one on B6 does not.
        reader, writer = await a.open_connection(B_ADDRESS, 7, family=socket.AF_INET)
        writer.write(b"four\n")
        assert await reader.readline() == b"four\n"
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection(B_ADDRESS, 8)
        with pytest.raises(OSError) as raised:
            await a.open_connection(B6, 7, local_addr=("fd00:99::1", 0))
        assert raised.value.errno == 99  # EADDRNOTAVAIL: not one of A's addresses
        with pytest.raises(socket.gaierror):
            await a.open_connection(B6, 7, family=socket.AF_INET)
        any_server.close()
        own_server.close()
