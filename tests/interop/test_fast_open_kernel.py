"""TCP Fast Open (RFC 7413) with the kernel as the client: ustack serves with Fast Open on, and a
Python program in the test's namespace (net.ipv4.tcp_fastopen=1 there) sends with MSG_FASTOPEN
twice. The first SYN asks for a cookie and ustack's SYN-ACK brings one; the second SYN carries
the cookie and the request, which ustack takes at once: its SYN-ACK acknowledges the data (seen in
the pcap), and the reply comes back on both connections."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from interop_helpers import IO_TIMEOUT

from ustack.aio import AsyncStack
from ustack.stack import Stack
from ustack.tcp.config import TcpConfig
from ustack.wire import address_value, parse_packet
from ustack.wire.pcap import read_records
from ustack.wire.tcp import ACK, SYN

PORT = 7413
# The kernel's side: two connections, each sending its request with MSG_FASTOPEN (connect and send
# in one call), printing the reply. (PyPy's socket module lacks the constant: Linux's value.)
CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
MSG_FASTOPEN = getattr(socket, "MSG_FASTOPEN", 0x20000000)
for number in range(2):
    with socket.socket() as connection:
        connection.sendto(b"request %d" % number, MSG_FASTOPEN, (host, port))  # blocking
        connection.settimeout(20)
        print(connection.recv(100).decode())
"""


def test_the_kernel_sends_data_on_its_syn_with_ustacks_cookie(tun_in_namespace):
    setup = tun_in_namespace
    result = setup.namespace.run(["sysctl", "-w", "net.ipv4.tcp_fastopen=1"])
    assert result.returncode == 0, result.stderr

    async def serve(reader, writer):
        request = await reader.read(100)
        writer.write(b"reply to " + request)
        await writer.drain()
        writer.close()

    async def main():
        stack = Stack(address_value(setup.stack_address), TcpConfig(fast_open_server=True, fast_open_queue=16))
        async with AsyncStack(stack, setup.link) as astack:
            server = await astack.start_server(serve, port=PORT)
            (listener,) = stack.listeners.values()
            client = await asyncio.create_subprocess_exec(
                *setup.namespace.command([sys.executable, "-c", CLIENT, setup.stack_address, str(PORT)]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(client.communicate(), IO_TIMEOUT)
            assert client.returncode == 0, err.decode()
            server.close()
            return out.decode().split("\n"), listener.counters

    lines, counters = asyncio.run(main())
    assert lines[:2] == ["reply to request 0", "reply to request 1"]
    assert counters["fast_open_cookie_requested"] == 1 and counters["fast_open_accepted"] == 1

    _, records = read_records(setup.pcap_path.read_bytes())
    segments = [packet.tcp for packet in map(parse_packet, (record.data for record in records)) if packet.tcp]
    syns = [s for s in segments if s.flags & (SYN | ACK) == SYN and s.dst_port == PORT]
    syn_acks = [s for s in segments if s.flags & (SYN | ACK) == SYN | ACK and s.src_port == PORT]
    assert len(syns) == 2 and len(syn_acks) == 2
    # First: a cookie request (an empty option, RFC 7413 4.1.1), no data; ustack answers with a cookie.
    assert syns[0].options.fast_open == b"" and not syns[0].payload
    cookie = syn_acks[0].options.fast_open
    assert cookie and syn_acks[0].ack == syns[0].seq + 1
    # Second: the cookie and the request on the SYN; the SYN-ACK acknowledges the data (4.2).
    assert syns[1].options.fast_open == cookie and syns[1].payload == b"request 1"
    assert syn_acks[1].ack == syns[1].seq + 1 + len(b"request 1")
