"""Tracer: one line per packet, `<` in and `>` out, with annotations on the packet's own line."""

from __future__ import annotations

import io

from ustack.link import Tracer
from ustack.link.tracer import minimal_format

from link_helpers import ScriptedLink, tcp_packet


def short(packet: bytes) -> str:
    return f"packet of {len(packet)}"


def make_tracer(**kwargs):
    lines: list[str] = []
    device = ScriptedLink()
    tracer = Tracer(device, output=lines.append, formatter=short, **kwargs)
    return tracer, device, lines


def test_one_line_per_packet_with_time_and_direction():
    tracer, device, lines = make_tracer()
    device.arrive(b"E" + bytes(39))
    for packet in tracer.receive_batch(100.0):
        pass
    tracer.send(b"E" + bytes(59), 100.25)
    tracer.flush()
    assert lines == ["   0.000000 < packet of 40", "   0.250000 > packet of 60"]


def test_annotations_land_on_the_packet_being_processed():
    tracer, device, lines = make_tracer(time_origin=0.0)
    device.arrive(b"E" + bytes(39), b"E" + bytes(40), b"E" + bytes(41))
    for packet in tracer.receive_batch(1.0):
        if len(packet) == 41:
            tracer.annotate("LISTEN -> SYN-RECEIVED")
            tracer.send(b"E" + bytes(43), 1.0)  # the reply, sent while handling the packet
            tracer.annotate("(reply)")
    assert lines == [  # the loop is over, so every line is finished
        "   1.000000 < packet of 40",
        "   1.000000 < packet of 41  LISTEN -> SYN-RECEIVED",
        "   1.000000 > packet of 44",
        "             (reply)",  # sent packets are not annotated: their line is already out
        "   1.000000 < packet of 42",
    ]


def test_a_batch_nobody_iterates_is_still_traced_on_flush():
    tracer, device, lines = make_tracer(time_origin=0.0)
    device.arrive(b"E" + bytes(39), b"E" + bytes(39))
    batch = tracer.receive_batch(0.0)
    assert len(batch) == 2 and lines == []
    tracer.flush()
    assert lines == ["   0.000000 < packet of 40"] * 2


def test_annotation_without_a_packet_is_its_own_line():
    tracer, _, lines = make_tracer()
    tracer.annotate("ESTABLISHED -> FIN-WAIT-1")
    assert lines == [" " * 13 + "ESTABLISHED -> FIN-WAIT-1"]


def test_writes_to_a_stream_and_closes_with_the_chain():
    stream = io.StringIO()
    device = ScriptedLink()
    tracer = Tracer(device, output=stream, formatter=minimal_format, time_origin=0.0)
    tracer.send(tcp_packet(), 0.5)
    tracer.close()
    assert stream.getvalue() == "   0.500000 > IP 10.77.0.1 > 10.77.0.2: proto 6, length 40\n"
    assert device.closed


def test_a_formatter_that_fails_does_not_break_the_link():
    def broken(packet):
        raise ValueError("ipv4_truncated")

    lines = []
    device = ScriptedLink()
    tracer = Tracer(device, output=lines.append, formatter=broken, time_origin=0.0)
    tracer.send(b"E", 0.0)
    tracer.flush()
    assert device.sent == [b"E"]
    assert lines == ["   0.000000 > [cannot format: ipv4_truncated] length 1"]


def test_minimal_format_names_non_ipv4():
    assert minimal_format(b"`" + bytes(39)) == "not IPv4, length 40"


def test_as_an_observer_it_annotates_state_changes_and_nothing_else():
    """Tracer.observe is what AsyncStack.add_observer takes: StateChanged events become
    annotations on the current packet's line; packets and other events add nothing."""
    from ustack.stack import StackEvent
    from ustack.tcp.events import DataReadable, StateChanged
    from ustack.tcp.state import State

    tracer, device, lines = make_tracer(time_origin=0.0)
    device.arrive(b"E" + bytes(39))
    for packet in tracer.receive_batch(1.0):
        tracer.observe(1.0, "<", packet)
        tracer.observe(1.0, "event", StackEvent(None, DataReadable(5)))
        tracer.observe(1.0, "event", StackEvent(None, StateChanged(State.LISTEN, State.SYN_RECEIVED, "SYN")))
    tracer.observe(2.0, "event", StackEvent(None, StateChanged(State.TIME_WAIT, State.CLOSED, "timer")))
    assert lines == ["   1.000000 < packet of 40  LISTEN -> SYN-RECEIVED", "             TIME-WAIT -> CLOSED"]
