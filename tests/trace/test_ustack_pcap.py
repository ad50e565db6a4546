"""Ladders of packets built and recorded by ustack itself: segments built by
`ustack.wire.build_tcp_packet`, carried over a MemoryLink pair, one lost on purpose by the
FaultInjector, written by the PcapWriter (a RAW pcap), then drawn; and the same exchange fed live
to a LadderRecorder with the stack's exact states."""

from __future__ import annotations

import pytest

from ustack.link import FaultInjector, MemoryLink, PcapWriter
from ustack.tcp.state import State
from ustack.trace.infer import build_ladder
from ustack.trace.model import LEFT, LOST, NORMAL, RETRANSMISSION, RIGHT
from ustack.trace.pcap_source import read_capture
from ustack.trace.recorder import LOCAL, REMOTE, LadderRecorder
from ustack.trace.render_text import render_text
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment

USTACK = (address_value("10.77.0.2"), 5000)
KERNEL = (address_value("10.77.0.1"), 34567)
LOST_SEQ = 1101


class Exchange:
    """Both ends of one connection, scripted on virtual time over a real link chain."""

    def __init__(self, pcap_path):
        ustack_end, kernel_end = MemoryLink.pair()
        self.injector = FaultInjector(ustack_end, seed=1)
        # Outbound data segment 1101 is dropped once, after the PcapWriter saw it leave.
        self.rule = self.injector.drop_when(lambda packet: parse_packet(packet).tcp.seq == LOST_SEQ, count=1, direction="outbound")
        self.ustack_link = PcapWriter(self.injector, pcap_path, timestamp_offset=0.0)
        self.kernel_link = kernel_end
        self.now = 100.0
        self.identification = 0
        self.recorder = LadderRecorder(local_label="ustack", remote_label="kernel")

    def ustack_sends(self, flags, seq, ack, payload=b"", options=TcpOptions(), gap=0.01):
        self.now += gap
        self.identification += 1
        segment = TcpSegment(USTACK[1], KERNEL[1], seq, ack, flags, 64000, 0, options, payload)
        packet = build_tcp_packet(USTACK[0], KERNEL[0], segment, identification=self.identification)
        dropped_before = len(self.rule.dropped)
        self.ustack_link.send(packet, self.now)
        dropped = len(self.rule.dropped) > dropped_before
        self.recorder.on_packet(self.now, packet, "out", dropped=dropped, note="dropped by FaultInjector" if dropped else "")
        arrived = self.kernel_link.receive_batch(self.now)
        assert len(arrived) == (0 if dropped else 1)

    def kernel_sends(self, flags, seq, ack, payload=b"", options=TcpOptions(), gap=0.01):
        self.now += gap
        segment = TcpSegment(KERNEL[1], USTACK[1], seq, ack, flags, 65000, 0, options, payload)
        self.kernel_link.send(build_tcp_packet(KERNEL[0], USTACK[0], segment, identification=0), self.now)
        (packet,) = self.ustack_link.receive_batch(self.now)
        self.recorder.on_packet(self.now, parse_packet(packet), "in")

    def state(self, old, new, cause):
        self.recorder.on_state(self.now, LOCAL, old, new, cause)


def run_exchange(exchange):
    """ustack connects, sends three segments (the second is lost), retransmits it on RTO, closes."""
    e = exchange
    e.state(State.CLOSED, State.SYN_SENT, "connect()")
    e.ustack_sends(SYN, 1000, 0, options=TcpOptions(mss=1460, window_scale=7, sack_permitted=True))
    e.kernel_sends(SYN | ACK, 7000, 1001, options=TcpOptions(mss=1460, window_scale=7, sack_permitted=True))
    e.state(State.SYN_SENT, State.ESTABLISHED, "received SYN,ACK")
    e.ustack_sends(ACK, 1001, 7001)
    e.ustack_sends(PSH | ACK, 1001, 7001, b"a" * 100)
    e.ustack_sends(PSH | ACK, 1101, 7001, b"b" * 100)  # dropped by the FaultInjector
    e.ustack_sends(PSH | ACK, 1201, 7001, b"c" * 100)
    e.kernel_sends(ACK, 7001, 1101, gap=0.02)
    e.kernel_sends(ACK, 7001, 1101, options=TcpOptions(sack_blocks=((1201, 1301),)), gap=0.001)
    e.ustack_sends(PSH | ACK, 1101, 7001, b"b" * 100, gap=0.2)  # RTO
    e.kernel_sends(ACK, 7001, 1301)
    e.state(State.ESTABLISHED, State.FIN_WAIT_1, "close()")
    e.ustack_sends(FIN | ACK, 1301, 7001)
    e.kernel_sends(ACK, 7001, 1302)
    e.state(State.FIN_WAIT_1, State.FIN_WAIT_2, "ACK of our FIN")
    e.kernel_sends(FIN | ACK, 7001, 1302)
    e.state(State.FIN_WAIT_2, State.TIME_WAIT, "received FIN")
    e.ustack_sends(ACK, 1302, 7002)


@pytest.fixture
def exchange(tmp_path):
    e = Exchange(tmp_path / "ustack.pcap")
    run_exchange(e)
    e.ustack_link.close()
    e.kernel_link.close()
    assert len(e.rule.dropped) == 1
    return e


def test_ladder_of_a_pcap_written_by_ustack(exchange, tmp_path):
    capture = read_capture((tmp_path / "ustack.pcap").read_bytes())
    assert not capture.skipped
    ladder = build_ladder(capture.observations, source="ustack.pcap")
    assert (ladder.left.name, ladder.right.name) == ("10.77.0.2:5000", "10.77.0.1:34567")
    arrows = ladder.arrows
    assert len(arrows) == 14  # the dropped segment is in the file: the writer is outside the injector
    assert [a.kind for a in arrows if a.seq == LOST_SEQ and a.length] == [LOST, RETRANSMISSION]
    assert ladder.states_of(LEFT) == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert ladder.states_of(RIGHT) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    text = render_text(ladder)
    assert "<sack 1 {1201:1301}>" in text and "(probably lost)" in text


def test_recorder_draws_exact_states_and_known_drops(exchange):
    ladder = exchange.recorder.ladder()
    assert (ladder.left.title, ladder.right.title) == ("10.77.0.2:5000 (ustack)", "10.77.0.1:34567 (kernel)")
    assert ladder.source == "live"
    arrows = ladder.arrows
    lost = [a for a in arrows if a.kind == LOST]
    assert len(lost) == 1 and lost[0].seq == LOST_SEQ and lost[0].note == "dropped by FaultInjector"
    assert [a.kind for a in arrows if a.seq == LOST_SEQ and a.length] == [LOST, RETRANSMISSION]
    local = [m for m in ladder.marks if m.side == LEFT]
    assert [m.state for m in local] == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                                       State.TIME_WAIT]
    assert not any(m.inferred for m in local)
    assert [m.cause for m in local][1:3] == ["connect()", "received SYN,ACK"]
    remote = [m for m in ladder.marks if m.side == RIGHT]
    assert all(m.inferred for m in remote) and remote[-1].state is State.CLOSED
    # Order: SYN-SENT is written before the SYN, ESTABLISHED after the SYN,ACK and before the ACK.
    items = ladder.items
    assert items.index(local[1]) < items.index(arrows[0]) < items.index(arrows[1]) < items.index(local[2]) < items.index(arrows[2])
    text = render_text(ladder)
    assert "SYN-SENT " in text and "SYN-SENT*" not in text and "LISTEN*" in text


def test_recorder_keeps_one_connection_and_reports_both_sides_when_told():
    recorder = LadderRecorder(port=80)

    def packet(src, dst, sport, dport, flags, seq, ack=0):
        return build_tcp_packet(address_value(src), address_value(dst), TcpSegment(sport, dport, seq, ack, flags, 1000))

    recorder.on_packet(0.0, packet("10.0.0.2", "10.0.0.1", 1, 2, SYN, 5), "out")  # not port 80
    recorder.on_state(0.0, LOCAL, State.CLOSED, State.SYN_SENT, "connect()")
    recorder.on_state(0.0, REMOTE, State.LISTEN, State.SYN_RECEIVED, "received SYN")
    recorder.on_packet(0.1, packet("10.0.0.2", "10.0.0.1", 40000, 80, SYN, 100), "out")
    recorder.on_packet(0.2, packet("10.0.0.1", "10.0.0.2", 80, 40000, SYN | ACK, 300, 101), "in")
    recorder.on_packet(0.2, b"\x45garbage", "in")
    recorder.on_packet(0.3, packet("10.0.0.1", "10.0.0.2", 80, 40001, ACK, 1, 1), "in")  # another one
    ladder = recorder.ladder()
    assert len(ladder.arrows) == 2
    assert recorder.skipped["other_connection"] == 2 and sum(recorder.skipped.values()) == 3
    assert [(m.side, m.state, m.inferred) for m in ladder.marks] == [
        (LEFT, State.CLOSED, False), (RIGHT, State.LISTEN, False), (LEFT, State.SYN_SENT, False),
        (RIGHT, State.SYN_RECEIVED, False),
    ]  # fmt: skip  (the state before each side's first report is drawn at the top)
    assert all(a.kind == NORMAL for a in ladder.arrows)
    with pytest.raises(ValueError, match="direction"):
        recorder.on_packet(0.4, packet("10.0.0.2", "10.0.0.1", 40000, 80, ACK, 101, 301), "sideways")
