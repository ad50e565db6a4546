"""Leaving `async with AsyncStack(...)` while a connection still has data to send.

The asyncio API promises what asyncio's socket transports do: close() and wait_closed() return
once the data is handed to the TCP below, which then delivers it and closes. The kernel keeps a
closed socket's data going after the program moves on; ustack's core only runs while its
AsyncStack does, so leaving the AsyncStack must either finish those connections or reset them,
never strand the peer.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from interop_helpers import run_client


SLOW_SERVER = """
import socket, sys
listener = socket.socket()
# A small receive buffer (set before listen, so the connection inherits it): the kernel's window
# closes after a few segments and stays closed until this server reads.
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
listener.bind(("", 5003))
listener.listen()
print("listening", flush=True)
connection, _ = listener.accept()
sys.stdin.readline()  # read only when the test says so
total = 0
try:
    while chunk := connection.recv(65536):
        total += len(chunk)
    print("eof", total, flush=True)
except ConnectionResetError:
    print("reset", total, flush=True)
"""


def test_leaving_the_async_stack_right_after_close_still_delivers_or_resets(tun_in_namespace):
    # An application that closes its writer and then leaves `async with AsyncStack(...)` at once
    # (as a script's last lines do) must not leave the peer waiting forever for data that never
    # comes: either everything written arrives, then the FIN, or the peer hears an RST.
    setup = tun_in_namespace
    server = setup.namespace.popen([sys.executable, "-c", SLOW_SERVER], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    data = os.urandom(200_000)  # fits in ustack's send buffer: close() and wait_closed() return at once

    async def client(astack):
        reader, writer = await astack.open_connection(setup.host_address, 5003)
        writer.write(data)
        writer.close()
        await writer.wait_closed()

    run_client(setup, client)
    try:
        outcome = server.communicate("go\n", timeout=10)[0].split()
    except subprocess.TimeoutExpired:
        outcome = None
    if outcome is None:
        pytest.fail("10 s after the AsyncStack closed, the kernel still waits for the rest of the data: "
                    "neither the data nor an RST was sent", pytrace=False)
    assert outcome in (["eof", str(len(data))], ["reset", outcome[1]]), outcome
