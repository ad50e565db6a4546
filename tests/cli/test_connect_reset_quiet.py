"""`ustack connect` after a reset: one line, and no future left holding an error nobody read.

asyncio prints "Future (or Task) exception was never retrieved" when such a future is freed,
at a moment and in an order the cyclic GC decides; `ustack connect` once printed it after its one
error line (1 run in 4 of tests/interop/test_serve.py). Here the command runs in this process
over a memory link to a second ustack host that resets the connection on its first data, and
the test looks, with the GC held off, at every future the run left behind: deterministic, no
luck with the GC's order needed. Attacker's knowledge: none (the peer resets its own connection).
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import threading
from types import SimpleNamespace

import pytest

from ustack.aio import AsyncStack
from ustack.commands import connect
from ustack.link import MemoryLink
from ustack.stack import Stack
from ustack.tcp.config import TcpConfig
from ustack.wire.ipv4 import address_value

CLIENT, SERVER, PORT = "10.77.0.2", "10.77.0.1", 5002
TEST_TIMEOUT = 30.0  # a hang guard, never a measurement


class NoControl:
    async def close(self) -> None:
        pass


def unread_errors() -> list[str]:
    """The futures alive that asyncio would report when freed: done, with an exception that was
    never retrieved (asyncio's own test for the report is `_log_traceback`)."""
    return [repr(thing) for thing in gc.get_objects()
            if isinstance(thing, asyncio.Future) and thing.done() and not thing.cancelled() and thing._log_traceback]


def run_connect_against_resetting_server() -> BaseException | int:
    link_client, link_server = MemoryLink.pair()
    client_stack = Stack(address_value(CLIENT), TcpConfig(), mtu=link_client.mtu)

    async def control(astack, program, worker=None):
        return NoControl()

    network = SimpleNamespace(make_stack=lambda config: client_stack, link=link_client, observers=[],
                              start_control=control)
    args = SimpleNamespace(host=SERVER, port=PORT, timeout=10.0, verbose=False, msl=None)

    async def reset_on_first_data(reader, writer):
        await reader.read(100)
        writer.transport.abort()  # RST (RFC 9293 3.10.5), as SO_LINGER 0 makes the kernel send

    async def main():
        async with AsyncStack(Stack(address_value(SERVER), TcpConfig(), mtu=link_server.mtu), link_server) as server:
            await server.start_server(reset_on_first_data, port=PORT)
            try:
                return await asyncio.wait_for(connect._connect(args, network), TEST_TIMEOUT)
            except connect.ConnectFailed as failure:
                return failure

    try:
        return asyncio.run(main())
    finally:
        link_client.close()
        link_server.close()


def test_a_reset_is_one_error_and_leaves_no_unread_future(monkeypatch):
    read_end, write_end = os.pipe()
    os.write(write_end, b"trigger\n")
    os.close(write_end)
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end, "r"))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO()))
    gc.collect()
    gc.disable()  # what the run leaves stays alive, to be looked at
    try:
        outcome = run_connect_against_resetting_server()
        left = unread_errors()
    finally:
        gc.enable()
        for thread in threading.enumerate():
            if thread.name == "stdin":  # connect's reader of stdin: it ends at the pipe's end
                thread.join(TEST_TIMEOUT)
        sys.stdin.close()
    assert isinstance(outcome, connect.ConnectFailed), outcome
    assert str(outcome) == f"connection reset by {SERVER}:{PORT}"
    assert left == []


@pytest.fixture(autouse=True)
def private_run_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("USTACK_RUN_DIR", str(tmp_path))
