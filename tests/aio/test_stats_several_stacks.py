"""`ustack stats` for a process running several stacks (ustack/aio/registry.py): one control
socket answers for all of them, and each stack gets its own block, titled with the program name
it was given and `stack=I/N`, with its own counters; a ustack.sock network (a stack on a thread
of its own) is read on its own loop. Also: an IPv6-only AsyncStack registers (it used to fail to
start, its IPv4 address being None)."""

from __future__ import annotations

import asyncio
import json
import os

from twohosts import A_ADDRESS, B_ADDRESS, run_async

from ustack import cli
from ustack.aio import AsyncStack
from ustack.link import MemoryLink
from ustack.stack import Stack
from ustack.sock import Network


def blocks(output: str) -> dict[str, dict[str, str]]:
    """title -> {counter name: value} for each block of `ustack stats`."""
    found: dict[str, dict[str, str]] = {}
    for block in output.strip().split("\n\n"):
        title, *lines = block.splitlines()
        found[title] = dict(line.split() for line in lines)
    return found


async def stats(capsys, *arguments: str) -> str:
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["stats", *arguments]) == 0
    return capsys.readouterr().out


async def refused_then_stats(client: AsyncStack, capsys) -> dict[str, dict[str, str]]:
    """Connect to B's port 9, where nobody listens (B answers with a reset, and then nothing
    moves any more), then read `ustack stats`."""
    try:
        await client.open_connection(B_ADDRESS, 9)
    except ConnectionRefusedError:
        pass
    return blocks(await stats(capsys))


@run_async
async def test_each_asyncstack_of_a_process_has_its_own_block(capsys):
    link_a, link_b = MemoryLink.pair()
    async with AsyncStack(Stack(A_ADDRESS), link_a, program="client") as a, \
            AsyncStack(Stack(B_ADDRESS), link_b, program="server") as b:
        await b.start_server(lambda reader, writer: writer.close(), port=7)
        printed = await refused_then_stats(a, capsys)  # the server's stack answers with a reset
        pid = os.getpid()
        client, server = f"#client (pid {pid}) stack=1/2 {A_ADDRESS}", f"#server (pid {pid}) stack=2/2 {B_ADDRESS}"
        assert list(printed) == [client, server]
        assert printed[server]["stack.resets_sent"] == "1"
        assert printed[client].get("stack.resets_sent", "0") == "0"
        assert printed[server]["stack.drops.tcp_no_connection"] == "1"
        assert "stack.drops.tcp_no_connection" not in printed[client]
        assert printed[client]["stack.packets_in"] == str(a.stack.counters["packets_in"])
        assert printed[server]["stack.packets_in"] == str(b.stack.counters["packets_in"])

        [client_json, server_json] = json.loads(await stats(capsys, "--json"))
        assert (client_json["program"], client_json["stack"], client_json["address"]) == ("client", {"index": 1, "count": 2}, A_ADDRESS)
        assert (server_json["program"], server_json["stack"]) == ("server", {"index": 2, "count": 2})
        assert server_json["statistics"]["stack"]["counters"]["resets_sent"] == 1
    link_a.close()
    link_b.close()


@run_async
async def test_one_stack_keeps_the_plain_block(capsys):
    link_a, link_b = MemoryLink.pair()
    async with AsyncStack(Stack(A_ADDRESS), link_a, program="alone"):
        printed = blocks(await stats(capsys))
        assert list(printed) == [f"#alone (pid {os.getpid()}) {A_ADDRESS}"]
        [answer] = json.loads(await stats(capsys, "--json"))
        assert "stack" not in answer
    link_a.close()
    link_b.close()


@run_async
async def test_a_sock_network_beside_an_asyncstack_is_read_on_its_own_thread(capsys):
    link_a, link_b = MemoryLink.pair()
    network = await asyncio.to_thread(Network, Stack(B_ADDRESS), link_b, program="blocking server")
    try:
        async with AsyncStack(Stack(A_ADDRESS), link_a, program="asyncio client") as a:
            printed = await refused_then_stats(a, capsys)  # the blocking network's stack, on its own thread, resets
            pid = os.getpid()
            blocking, client = f"#blocking server (pid {pid}) stack=1/2 {B_ADDRESS}", f"#asyncio client (pid {pid}) stack=2/2 {A_ADDRESS}"
            assert list(printed) == [blocking, client]
            assert (printed[blocking]["stack.resets_sent"], printed[blocking]["stack.packets_in"]) == ("1", "1")
            assert printed[client]["stack.packets_in"] == "1"  # the reset
    finally:
        await asyncio.to_thread(network.close)
        link_a.close()
        link_b.close()


@run_async
async def test_an_ipv6_only_asyncstack_registers_and_names_its_address(capsys):
    link_a, link_b = MemoryLink.pair()
    async with AsyncStack(Stack(None, address6="fd00:77::2"), link_a, program="six"), \
            AsyncStack(Stack("10.77.0.2", address6="fd00:77::3"), link_b, program="both"):
        printed = blocks(await stats(capsys))
        pid = os.getpid()
        assert list(printed) == [f"#six (pid {pid}) stack=1/2 fd00:77::2", f"#both (pid {pid}) stack=2/2 10.77.0.2 fd00:77::3"]
    link_a.close()
    link_b.close()
