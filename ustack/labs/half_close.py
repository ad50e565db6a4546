"""Lab `half-close`: one side shuts down writing (shutdown(SHUT_WR): its FIN) and keeps reading in
FIN-WAIT-2, while the other keeps sending in CLOSE-WAIT.

Scene 1: the kernel half-closes, ustack keeps sending (ustack in CLOSE-WAIT, the kernel in
FIN-WAIT-2, as its ss shows). Scene 2: the roles swap: ustack half-closes (write_eof) and keeps
receiving in FIN-WAIT-2 while the kernel, in CLOSE-WAIT, keeps sending. Scene 3: the everyday
use, with `nc -N`: send a request, half-close, and read the answer that comes after the FIN.
"""

from __future__ import annotations

import asyncio

from ..tcp import State, TcpConfig
from ..trace import LEFT, RIGHT
from .session import LabOptions, LabSession, run_lab

NAME = "half-close"
SUMMARY = "shutdown(SHUT_WR): one side reads on in FIN-WAIT-2 while the other sends on in CLOSE-WAIT"
PORT = 8000
PORT_SWAPPED = 8001
PORT_NETCAT = 8002
REQUEST = "half-close me, please"
MSL = 0.5
CHUNKS = 3
CHUNK = 1000

EXPLANATION = f"""\
A FIN closes one direction only: in RFC 9293 3.6, CLOSE means "I have nothing more to send",
not "I want nothing more". The side that sent it can go on receiving for as long as the other side has something to say; this is
the half-close, what shutdown(SHUT_WR) does with sockets and write_eof() with asyncio streams.

After its FIN is acknowledged, the closing side sits in FIN-WAIT-2: it has nothing more to send
and waits for the other side's FIN, accepting data meanwhile (RFC 9293 3.10.7.4, FIN-WAIT-2:
process the segment text). The other side, told of the end of the stream (read() returns 0), is in
CLOSE-WAIT: it may still SEND (RFC 9293 3.10.2, CLOSE-WAIT: queue the data), and the connection
ends when it closes too (LAST-ACK, then CLOSED; the first closer goes through TIME-WAIT).

Programs rely on this: `nc -N` and `ssh host cmd < file` send their input, half-close, and keep
printing the answer; a server reads a request to its end and still answers it.

A caution from Linux: a socket that is *closed* (not just shut down) in FIN-WAIT-2 cannot read any
more, so Linux only keeps it for net.ipv4.tcp_fin_timeout (60 s) before dropping it. A half-closed
socket has no such limit. RFC 9293 3.10.7.4 has the user told that the connection is closing when
the FIN arrives: with sockets, that is the read() of 0 bytes.

What to look for: data segments ({CHUNKS} x {CHUNK} bytes) flowing from the CLOSE-WAIT side to
the FIN-WAIT-2 side after the first FIN, each acknowledged; the ss outputs showing FIN-WAIT-2 and
CLOSE-WAIT with the data waiting in Recv-Q.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=MSL))


async def scenario(lab: LabSession) -> str:
    await _kernel_half_closes(lab)
    await _ustack_half_closes(lab)
    await _netcat_half_closes(lab)
    return EXPLANATION


def _data_after_first_fin(lab: LabSession, sender: int, fin_side: int) -> int:
    ladder = lab.ladder()
    fins = [a for a in ladder.arrows if a.from_side == fin_side and a.flags & 0x01]
    if not fins:
        return 0
    return sum(a.length for a in ladder.arrows if a.from_side == sender and a.time >= fins[0].time)


async def _kernel_half_closes(lab: LabSession) -> None:
    scene = lab.scene("The kernel half-closes; ustack keeps sending", port=PORT)
    kernel, reader, writer, connection, _ = await lab.kernel_connects(PORT)
    lab.step("kernel: connect(); ustack accepts")
    await kernel.call("shutdown")
    lab.step("kernel: shutdown(SHUT_WR): its FIN; it will not send again but can still read")
    await lab.wait_state(connection, State.CLOSE_WAIT)
    end = await reader.read(100)
    lab.step(f"ustack: read() returns {end!r}: end of the kernel's stream; ustack is in CLOSE-WAIT")
    for number in range(1, CHUNKS + 1):
        writer.write(bytes([48 + number]) * CHUNK)
        await writer.drain()
        await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the kernel to acknowledge the data")
        lab.step(f"ustack: send {CHUNK} bytes in CLOSE-WAIT (chunk {number}); the kernel acknowledges them")
        if number == 1:
            await lab.kernel_ss("the kernel half-closed and is receiving: FIN-WAIT-2, data in Recv-Q")
            await lab.ustack_ss("ustack, still sending")
    reply = await kernel.call("recv", CHUNKS * CHUNK, 5)
    lab.step(f"kernel: recv() in FIN-WAIT-2 reads {reply['received']} bytes")
    writer.close()
    await lab.wait_state(connection, State.CLOSED)
    lab.step("ustack: close(): LAST-ACK, then CLOSED when the kernel acknowledges the FIN")
    await lab.kernel_ss("after both FINs: the kernel, which closed first, is in TIME-WAIT")
    scene.facts["data_after_fin"] = _data_after_first_fin(lab, LEFT, RIGHT)
    scene.facts["kernel_received"] = reply["received"]
    lab.cut()
    await kernel.call("close")


async def _ustack_half_closes(lab: LabSession) -> None:
    scene = lab.scene("ustack half-closes; the kernel keeps sending", port=PORT_SWAPPED)
    kernel, reader, writer, connection, _ = await lab.ustack_connects(PORT_SWAPPED)
    lab.step(f"ustack: connect() to the kernel's port {PORT_SWAPPED}; the kernel accepts")
    writer.write_eof()
    await lab.wait_state(connection, State.FIN_WAIT_2)
    lab.step("ustack: write_eof() (shutdown): its FIN; acknowledged, ustack is in FIN-WAIT-2")
    received = 0
    for number in range(1, CHUNKS + 1):
        await kernel.call("send", CHUNK)
        data = await reader.readexactly(CHUNK)
        received += len(data)
        lab.step(f"kernel: send {CHUNK} bytes in CLOSE-WAIT (chunk {number}); ustack reads them in FIN-WAIT-2")
        if number == 1:
            await lab.kernel_ss("the kernel, still sending after ustack's FIN: CLOSE-WAIT")
            await lab.ustack_ss("ustack, half-closed and receiving")
    await kernel.call("close")
    lab.step("kernel: close(): its FIN")
    await lab.wait_state(connection, State.TIME_WAIT)
    end = await reader.read(100)
    lab.step(f"ustack: read() returns {end!r}: end of stream; ustack, which closed first, is in TIME-WAIT")
    await lab.wait_state(connection, State.CLOSED, timeout=4 * MSL + 5)
    scene.facts["data_after_fin"] = _data_after_first_fin(lab, RIGHT, LEFT)
    scene.facts["ustack_received"] = received
    lab.cut()


async def _netcat_half_closes(lab: LabSession) -> None:
    scene = lab.scene("nc -N: the request, a half-close, and the answer after it", port=PORT_NETCAT)
    server = await lab.listen(PORT_NETCAT)
    lab.step(f"ustack: a server on port {PORT_NETCAT} that reads the whole request (to the end of stream) "
             "and only then answers it")
    command = ["nc", "-N", lab.ustack_address, str(PORT_NETCAT)]
    netcat = asyncio.ensure_future(lab.run_in_namespace(command, input=REQUEST + "\n"))
    reader, writer, connection = await server.next()
    request = await reader.read()  # to the end of stream: nc's FIN
    lab.step(f"kernel: echo '{REQUEST}' | {' '.join(command)}: nc sends its input, then shutdown(SHUT_WR) "
             f"at the end of it; ustack reads {len(request)} bytes and the end of stream")
    await lab.kernel_ss("nc has half-closed and waits for the answer: FIN-WAIT-2", ("-tano", "state", "fin-wait-2"))
    answer = request.decode().strip().upper() + "\n"
    writer.write(answer.encode())
    writer.close()
    lab.step(f"ustack: answers {answer.strip()!r} in CLOSE-WAIT, then closes")
    result = await netcat
    lab.step(f"kernel: nc prints {result.stdout.strip()!r} and exits with status {result.returncode}")
    await lab.wait_state(connection, State.CLOSED)
    scene.facts.update(netcat_output=result.stdout, netcat_status=result.returncode,
                       data_after_fin=_data_after_first_fin(lab, LEFT, RIGHT))
    lab.cut()
