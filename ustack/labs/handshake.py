"""Lab `handshake`: the three-way handshake and the four-way teardown, with the arithmetic of
every sequence and acknowledgment number spelled out.

The kernel is the client (a python socket), ustack the server. The kernel connects and sends
five bytes; ustack closes first (the active close: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT), the
kernel closes second (CLOSE-WAIT, LAST-ACK). TIME-WAIT lasts 2*MSL with MSL = 0.5 s here.
"""

from __future__ import annotations

from ..tcp import State, TcpConfig
from .common import sequence_arithmetic
from .session import LabOptions, LabSession, run_lab

NAME = "handshake"
SUMMARY = "three-way handshake and four-way teardown, seq/ack arithmetic spelled out"
PORT = 8000
MSL = 0.5

EXPLANATION = f"""\
Opening (RFC 9293 3.5, Figure 6). The client's SYN carries its initial sequence number (ISN,
chosen as RFC 9293 3.4.1 and RFC 6528 say: a clock plus a keyed hash of the 4-tuple, so it is
unpredictable). A SYN occupies one sequence number although it carries no data, so the server's
SYN-ACK acknowledges ISN + 1 and offers its own ISN; the client's ACK acknowledges that + 1.
Each side sends a SYN and acknowledges the other's: three segments, because the second one does
both jobs. ustack goes CLOSED -> LISTEN -> SYN-RECEIVED -> ESTABLISHED; the kernel, as client,
SYN-SENT -> ESTABLISHED.

Data (RFC 9293 3.4, 3.10.7.4). An ACK names the next byte expected: SEG.SEQ + SEG.LEN, where
SEG.LEN counts the data octets plus one for SYN and one for FIN. The arithmetic under the ladder
checks every number the two stacks chose.

Closing (RFC 9293 3.6, Figure 12). Each direction is closed by its own FIN, which also takes one
sequence number. ustack closes first: FIN-WAIT-1 until its FIN is acknowledged, FIN-WAIT-2 while
the kernel may still send, then the kernel's FIN moves it to TIME-WAIT. The kernel, told of the end
of stream by read() returning 0, sat in CLOSE-WAIT until its application called close(), then in
LAST-ACK until ustack's ACK arrived. Four segments: two FINs and two ACKs (a side may combine its
FIN with the ACK of the other's, making three). The side that closes first keeps the connection in
TIME-WAIT for 2*MSL (RFC 9293 3.4.2, 3.6.1; MSL = {MSL} s here, 120 s in the RFC, 60 s of TIME-WAIT
on Linux): the time-wait lab shows why.

What to look for: the states changing on each side exactly when a SYN or FIN is sent or arrives,
and ack = seq + 1 for SYN and FIN, ack = seq + length for data.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=MSL))


async def scenario(lab: LabSession) -> str:
    lab.scene("Open, a little data, close", port=PORT)
    server = await lab.listen(PORT)
    lab.step(f"ustack: listen on {lab.endpoint(lab.ustack_address, PORT)}")
    kernel = await lab.kernel_peer()
    reply = await kernel.call("connect", lab.ustack_address, PORT)
    lab.step(f"kernel: connect() from {reply['local']} returns: the handshake is complete on the kernel side")
    reader, writer, connection = await server.next()
    await lab.wait_state(connection, State.ESTABLISHED)
    lab.step("ustack: the connection is ESTABLISHED and accepted")
    await lab.kernel_ss("with the connection open")

    await kernel.call("say", "hello")
    data = await reader.readexactly(5)
    lab.step(f"kernel: send(b'hello'); ustack reads {data!r}")

    writer.close()
    lab.step("ustack: close(): the active close, FIN first")
    await lab.wait_state(connection, State.FIN_WAIT_2)
    await lab.kernel_ss("after ustack's FIN was acknowledged (the kernel has not closed yet)")
    reply = await kernel.call("recv", 100)
    lab.step(f"kernel: recv() returns {reply['received']} bytes: end of stream")
    ss = await lab.prepare_ustack_ss()  # started now: TIME-WAIT lasts only 2 * MSL here
    await kernel.call("close")
    lab.step("kernel: close(): its FIN")
    await lab.wait_state(connection, State.TIME_WAIT)
    await lab.ustack_ss("with ustack in TIME-WAIT", prepared=ss)
    await lab.wait_state(connection, State.CLOSED, timeout=4 * MSL + 5)
    lab.step(f"ustack: TIME-WAIT ends after 2*MSL = {2 * MSL} s: CLOSED, the connection is forgotten")

    ladder = lab.ladder()
    lab.note("Sequence arithmetic (ack = seq + data length, + 1 for a SYN, + 1 for a FIN):")
    lab.current.notes.extend(sequence_arithmetic(ladder))
    return EXPLANATION
