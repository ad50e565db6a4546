"""open_tun_stack from inside a running loop: a real TUN device in a namespace the test creates,
the kernel as the client, and nothing left behind afterwards. Needs root and /dev/net/tun (fails
loudly without them, as the interop tests do)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from twohosts import run_async

from ustack.aio import open_tun_stack
from ustack.netns import namespace_exists

NAMESPACE = f"ust-aio-{os.getpid()}"
KERNEL_CLIENT = ("import socket; s = socket.create_connection(('10.77.0.2', 7), timeout=5); "
                 "s.sendall(b'hello from the kernel\\n'); print(s.makefile('rb').readline().decode(), end='')")


async def echo_line(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


@run_async
async def test_a_kernel_client_reaches_a_stack_opened_inside_the_loop():
    async with open_tun_stack(namespace=NAMESPACE) as astack:
        assert namespace_exists(NAMESPACE)
        server = await astack.start_server(echo_line, port=7)
        client = await asyncio.create_subprocess_exec("ip", "netns", "exec", NAMESPACE, sys.executable, "-c", KERNEL_CLIENT,
                                                      stdout=subprocess.PIPE)
        output, _ = await asyncio.wait_for(client.communicate(), 20)
        assert output == b"hello from the kernel\n" and client.returncode == 0
        server.close()
    assert not namespace_exists(NAMESPACE)  # created here, so removed here


@run_async
async def test_a_bad_address_fails_before_anything_is_built():
    with pytest.raises(ValueError, match="10.77.0.256"):
        async with open_tun_stack(namespace=NAMESPACE, address="10.77.0.256"):
            pass
    assert not namespace_exists(NAMESPACE)
