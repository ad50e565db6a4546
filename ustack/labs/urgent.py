"""Lab `urgent`: the URG flag and the urgent pointer, in both directions.

Scene 1: the kernel sends "abc", then one byte with send(MSG_OOB): its segment carries URG and
an urgent pointer. ustack reports the urgent mark and keeps the byte inline, in order.
Scene 2: ustack sends "abc" and then "!" as urgent data (Connection.send(urgent=True)). The
kernel, without SO_OOBINLINE, takes the last urgent byte out of band: recv(MSG_OOB) returns it
and the normal stream returns the rest without it.
"""

from __future__ import annotations

from ..tcp import TcpConfig
from ..tcp.events import UrgentDataArrived
from ..trace import LEFT, RIGHT
from ..wire import parse_packet
from ..wire.tcp import URG
from .session import LabOptions, LabSession, run_lab

NAME = "urgent"
SUMMARY = "the URG flag and urgent pointer, sent by the kernel (MSG_OOB) and by ustack"
PORT = 8000
PORT_FROM_USTACK = 9000

EXPLANATION = """\
TCP's urgent mechanism (RFC 9293 3.8.5) lets a sender say "there is something urgent ahead in
the stream, up to here": the URG flag is set and the 16-bit urgent pointer, added to the
segment's sequence number, marks where the urgent data ends. It does not make anything travel
faster and it is not a second channel: the bytes stay in the stream, in order; the receiver is
only told to read ahead to the mark (telnet used it to skip output after an interrupt).

Two readings of "where it ends" existed: RFC 793 and BSD point just past the last urgent byte,
RFC 1122 4.2.2.4 at the last urgent byte. RFC 6093 settled it on the BSD meaning every stack
uses (the pointer names the byte after the last urgent byte; RFC 9293 3.8.5 follows it), and
recommends that new applications not use urgent data at all, and that stacks deliver it inline.

ustack does exactly that: the urgent mark is reported (the UrgentDataArrived event says how many
bytes remain before it) and the data is read in order. Linux by default (without SO_OOBINLINE)
does something odder inherited from BSD: it removes the LAST urgent byte from the stream and
keeps it aside for recv(MSG_OOB); the normal reads skip it. A one-byte MSG_OOB send is the only
use that works the same everywhere, hence the single "!" in both scenes.

What to look for: the U flag and "urg N" on the arrows (N counts from the segment's sequence
number: here it points just past the "!"), the mark ustack reported, and the bytes each
application read.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


async def scenario(lab: LabSession) -> str:
    urgent_seen: list[tuple[str, int, int, int]] = []  # (sender, seq, length, urgent pointer)

    def note_urgent(direction: str, packet: bytes, dropped: bool) -> None:
        segment = parse_packet(packet).tcp
        if segment is not None and segment.flags & URG:
            sender = "ustack" if direction == "out" else "kernel"
            urgent_seen.append((sender, segment.seq, len(segment.payload), segment.urgent_pointer))

    lab.watch.listeners.append(note_urgent)
    await _kernel_sends_urgent(lab, urgent_seen)
    await _ustack_sends_urgent(lab, urgent_seen)
    return EXPLANATION


def _urgent_segments(lab: LabSession, side: int):
    return [a for a in lab.ladder().arrows if a.from_side == side and a.flags & URG]


def _pointer_notes(lab: LabSession, urgent_seen, sender: str) -> list[int]:
    pointers = []
    for who, seq, length, pointer in urgent_seen:
        if who != sender:
            continue
        pointers.append(pointer)
        lab.note(f"{who}'s URG segment: seq {seq}, {length} bytes, urgent pointer {pointer}: {seq} + {pointer} = "
                 f"{(seq + pointer) & 0xFFFFFFFF} is the sequence number just past the last urgent byte, the '!' "
                 "(RFC 6093).")
    urgent_seen[:] = [entry for entry in urgent_seen if entry[0] != sender]
    return pointers


async def _kernel_sends_urgent(lab: LabSession, urgent_seen) -> None:
    scene = lab.scene("The kernel sends urgent data with MSG_OOB", port=PORT)
    kernel, reader, writer, connection, _ = await lab.kernel_connects(PORT)
    lab.step("kernel: connect(); ustack accepts")
    await kernel.call("nodelay")
    await kernel.call("say", "abc")
    await kernel.call("oob", "!")
    lab.step("kernel: send(b'abc'), then send(b'!', MSG_OOB)")
    data = b""
    while len(data) < 4:
        data += await reader.read(100)
    marks = [event.bytes_before_mark for _, conn, event in lab.events
             if conn is connection and isinstance(event, UrgentDataArrived)]
    lab.step(f"ustack: urgent mark reported ({marks[0] if marks else 'none'} bytes to read up to it); "
             f"the application reads {data!r} inline, in order")
    await lab.kernel_ss("after sending the urgent byte", ("-tano", "state", "established"))
    urgent = _urgent_segments(lab, RIGHT)
    scene.facts.update(ustack_read=data.decode(), urgent_marks=marks,
                       urgent_pointers=_pointer_notes(lab, urgent_seen, "kernel"), urgent_segments=len(urgent))
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")


async def _ustack_sends_urgent(lab: LabSession, urgent_seen) -> None:
    scene = lab.scene("ustack sends urgent data; the kernel reads it out of band", port=PORT_FROM_USTACK)
    kernel, _, writer, connection, _ = await lab.ustack_connects(PORT_FROM_USTACK)
    lab.step(f"ustack: connect() to the kernel's port {PORT_FROM_USTACK}; the kernel accepts")
    now = lab.now()
    connection.send(b"abc", now)
    connection.send(b"!", now, urgent=True)
    lab.poke(connection)
    lab.step("ustack: send(b'abc'), then send(b'!', urgent=True): the urgent pointer marks the end of '!'")
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the kernel to acknowledge the 4 bytes")
    await lab.kernel_ss("the 4 bytes have arrived, not yet read", ("-tano", "state", "established"))
    out_of_band = await kernel.call("recv_oob")
    inline = await kernel.call("recv", 100, 2)
    lab.step(f"kernel: recv(MSG_OOB) returns {out_of_band['text']!r}; recv() returns {inline['text']!r} "
             "(the urgent byte is not in the normal stream)")
    urgent = _urgent_segments(lab, LEFT)
    scene.facts.update(kernel_oob=out_of_band["text"], kernel_inline=inline["text"], urgent_segments=len(urgent),
                       urgent_pointers=_pointer_notes(lab, urgent_seen, "ustack"))
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")
