"""ECN (RFC 3168) with the kernel: ustack asks on its SYN, the kernel (net.ipv4.tcp_ecn=1 in the
test's namespace) agrees, and 2 MB go each way through a FaultInjector that marks CE on 2% of the
ECN-capable packets in each direction. The kernel's `ss -ti` shows ECN negotiated; the CE marks
on the kernel's data come back from ustack as ECE until the kernel's CWR, and the kernel's echo
of the marks on ustack's data makes ustack reduce its window and say CWR."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess

from interop_helpers import IO_TIMEOUT, finished, inside, tcp_segments, wait_for_kernel_listener

from ustack.aio import AsyncStack
from ustack.link import FaultInjector, Faults
from ustack.stack import Stack
from ustack.tcp.config import TcpConfig
from ustack.wire import address_value
from ustack.wire.tcp import CWR, ECE

MEGABYTE = 1024 * 1024
PORT = 5001
SEED = 3168
# Of the ECN-capable packets in each direction. With the TUN's segmentation offload most packets
# carry many segments (a 64 KB GSO packet from the kernel is one packet here), so only a few
# dozen data packets cross each way: 20% of them still means several marks.
CE_SHARE = 0.2


def test_a_transfer_with_ce_marks_negotiates_ecn_with_the_kernel_and_both_sides_react(tun_in_namespace, tmp_path):
    print(f"seed {SEED}")
    setup = tun_in_namespace
    result = setup.namespace.run(["sysctl", "-w", "net.ipv4.tcp_ecn=1"])
    assert result.returncode == 0, result.stderr
    to_send, to_receive = os.urandom(2 * MEGABYTE), os.urandom(2 * MEGABYTE)
    (tmp_path / "server.bin").write_bytes(to_receive)
    with (tmp_path / "server.bin").open("rb") as stdin, (tmp_path / "received.bin").open("wb") as stdout:
        server = setup.namespace.popen(["nc", "-4", "-N", "-l", str(PORT)], stdin=stdin, stdout=stdout,
                                       stderr=subprocess.PIPE)
    wait_for_kernel_listener(setup.namespace.name, PORT)
    link = FaultInjector(setup.link, seed=SEED, inbound=Faults(ce=CE_SHARE), outbound=Faults(ce=CE_SHARE))
    kernel_view = []

    async def client(astack):
        reader, writer = await astack.open_connection(setup.host_address, PORT)
        async def send():
            for start in range(0, len(to_send), 100_000):
                writer.write(to_send[start:start + 100_000])
                await writer.drain()
            # The kernel's own account of the connection (ss -ti, as a user would look), while it
            # is open: before our FIN, after which the kernel's socket may be gone to TIME-WAIT.
            shown = await asyncio.to_thread(inside, setup.namespace.name, "ss", "-tinH", "dst", setup.stack_address)
            kernel_view.append(shown.stdout)
            writer.write_eof()

        _, received = await asyncio.gather(send(), reader.read())
        connection = writer.get_extra_info("connection")
        writer.close()
        await writer.wait_closed()
        await finished(astack, writer)
        return received, connection

    async def main():
        stack = Stack(address_value(setup.stack_address), TcpConfig(ecn="on"))
        async with AsyncStack(stack, link) as astack:
            return await asyncio.wait_for(client(astack), IO_TIMEOUT)

    received, connection = asyncio.run(main())
    assert hashlib.sha256(received).digest() == hashlib.sha256(to_receive).digest()
    assert server.wait(timeout=IO_TIMEOUT) == 0, server.stderr.read()
    assert hashlib.sha256((tmp_path / "received.bin").read_bytes()).digest() == hashlib.sha256(to_send).digest()

    # Negotiated, in the kernel's words. Its ss -i line lists "ecn" among the option words where
    # ss prints them (this machine's iproute2 6.1 prints none of "ts sack ecn", even between two
    # kernel sockets); it always shows delivered_ce, the kernel's count of its data that our ECE
    # echoes reported as CE-marked, which the kernel counts only on an ECN connection.
    print(kernel_view[0])
    words = kernel_view[0].split()
    delivered_ce = [int(word.partition(":")[2]) for word in words if word.startswith("delivered_ce:")]
    assert "ecn" in words or (delivered_ce and delivered_ce[0] > 0), kernel_view[0]
    assert connection.snapshot().ecn
    # Both directions were marked, and each side heard of it.
    assert link.counters["ce_marked_inbound"] > 0 and link.counters["ce_marked_outbound"] > 0
    ecn = connection.ecn
    assert 0 < ecn.ce_received <= link.counters["ce_marked_inbound"]  # the CE marks reached the core
    assert ecn.reductions > 0  # the kernel echoed the marks on our data with ECE; we reduced cwnd
    segments = tcp_segments(setup.pcap_path)
    ours = [s for s in segments if s.source[0] == setup.stack_address]
    kernels = [s for s in segments if s.source[0] == setup.host_address]
    assert any(s.flags & ECE for s in ours if not s.flags & 0x02), "ustack never echoed a CE with ECE"
    assert any(s.flags & CWR for s in kernels if not s.flags & 0x02), "the kernel never answered our ECE with CWR"
    assert any(s.flags & CWR for s in ours if not s.flags & 0x02), "ustack never said CWR after reducing"
