"""Two ustack stacks on virtual time, joined by a MemoryLink pair, one data segment dropped by the
FaultInjector: the pcap the PcapWriter wrote and the live LadderRecorder must tell the same story.

The recorder hears the states both stacks report (exact); the pcap ladder infers them from the
segments. Comparing the two checks the inference against the TCP core itself.
"""

from __future__ import annotations

import pytest

from ustack.link import FaultInjector, MemoryLink, PcapWriter
from ustack.stack import Stack
from ustack.tcp.events import StateChanged
from ustack.trace.infer import build_ladder
from ustack.trace.model import LEFT, LOST, RETRANSMISSION, RIGHT
from ustack.trace.pcap_source import read_capture
from ustack.trace.recorder import LOCAL, REMOTE, LadderRecorder
from ustack.trace.render_text import render_text
from ustack.wire import parse_packet
from ustack.wire.ipv4 import address_value

CLIENT = address_value("10.0.0.1")
SERVER = address_value("10.0.0.2")
PORT = 80
DATA = bytes(range(256)) * 12  # 3072 bytes: three segments at the default MSS


def first_data_segment(packet: bytes) -> bool:
    return bool(parse_packet(packet).tcp.payload)


class TwoStacks:
    """A client and a server stack, and the small loop a runtime would run, on virtual time."""

    def __init__(self, pcap_path):
        client_end, server_end = MemoryLink.pair()
        self.injector = FaultInjector(client_end, seed=5)
        self.rule = self.injector.drop_when(first_data_segment, count=1, direction="outbound")
        self.client_link = PcapWriter(self.injector, pcap_path, timestamp_offset=0.0)  # sees the drop
        self.server_link = server_end
        self.client = Stack(CLIENT, port_seed=1)
        self.server = Stack(SERVER, port_seed=2)
        self.listener = self.server.listen(PORT)
        self.recorder = LadderRecorder(local_label="client", remote_label="server")
        self.now = 0.0
        self.connection = self.client.connect(SERVER, PORT, self.now)
        self.accepted = None
        self.sent = False
        self.received = b""

    def _report(self, stack: Stack, side: int) -> None:
        for stack_event in stack.events():
            if isinstance(stack_event.event, StateChanged):
                event = stack_event.event
                self.recorder.on_state(self.now, side, event.old, event.new, event.cause)

    def _applications(self) -> None:
        # Client: once connected, send everything and close (the FIN follows the data).
        if not self.sent and self.connection.state.value == "ESTABLISHED":
            assert self.connection.send(DATA, self.now) == len(DATA)
            self.connection.close(self.now)
            self.client.poke(self.connection)
            self.sent = True
        # Server: read what arrives; close when the client's FIN has been read.
        if self.accepted is None:
            self.accepted = self.listener.accept()
        if self.accepted is not None and self.accepted.state.value != "CLOSED":
            while self.accepted.readable:
                self.received += self.accepted.recv(65536, self.now)
            if self.accepted.at_eof and self.accepted.state.value == "CLOSE-WAIT":
                self.accepted.close(self.now)
            self.server.poke(self.accepted)

    def pump(self) -> bool:
        """One round: client out, server in and out, client in. True if any packet moved."""
        moved = False
        packets = self.client.transmit(self.now)
        self._report(self.client, LOCAL)
        for packet in packets:
            dropped_before = len(self.rule.dropped)
            self.client_link.send(packet, self.now)
            dropped = len(self.rule.dropped) > dropped_before
            self.recorder.on_packet(self.now, packet, "out", dropped=dropped, note="dropped by FaultInjector" if dropped else "")
            moved = True
        for packet in self.server_link.receive_batch(self.now):
            self.server.receive(packet, self.now)
            moved = True
        self._applications()
        packets = self.server.transmit(self.now)
        self._report(self.server, REMOTE)
        self.server_link.send_batch(packets, self.now)
        for packet in self.client_link.receive_batch(self.now):
            self.recorder.on_packet(self.now, packet, "in")
            self.client.receive(packet, self.now)
            moved = True
        self._applications()
        return moved or bool(packets)

    def run_until(self, done) -> None:
        for _ in range(10_000):
            if done():
                return
            if self.pump():
                continue
            deadlines = [d for d in (self.client.next_deadline(), self.server.next_deadline(), self.client_link.next_deadline()) if d is not None]
            assert deadlines, "nothing left to happen, and not done"
            self.now = max(self.now, min(deadlines))
            self.client.on_timer(self.now)
            self.server.on_timer(self.now)
            self.client_link.on_timer(self.now)
        raise AssertionError("the exchange did not finish in 10000 rounds")


@pytest.fixture
def finished(tmp_path):
    stacks = TwoStacks(tmp_path / "client.pcap")
    try:
        stacks.run_until(
            lambda: stacks.connection.state.value == "TIME-WAIT"
            and stacks.accepted is not None
            and stacks.accepted.state.value == "CLOSED"
        )
    finally:
        stacks.client_link.close()
        stacks.server_link.close()
    assert stacks.received == DATA and len(stacks.rule.dropped) == 1
    return stacks, tmp_path / "client.pcap"


def test_pcap_and_recorder_agree(finished):
    stacks, pcap_path = finished
    capture = read_capture(pcap_path.read_bytes())
    assert not capture.skipped and capture.checksums_ignored == 0
    from_pcap = build_ladder(capture.observations, source="client.pcap")
    live = stacks.recorder.ladder()
    print(render_text(live, relative=True))
    print(render_text(from_pcap, relative=True))

    # The same segments, in the same order (the PcapWriter sits outside the FaultInjector).
    assert [(a.from_side, a.flags, a.seq, a.ack, a.length) for a in from_pcap.arrows] == [
        (a.from_side, a.flags, a.seq, a.ack, a.length) for a in live.arrows
    ]
    # The dropped segment: known exactly live, inferred from the server's duplicate ACKs in the pcap.
    lost_live = [a for a in live.arrows if a.kind == LOST]
    assert len(lost_live) == 1 and lost_live[0].note == "dropped by FaultInjector"
    lost_pcap = [a for a in from_pcap.arrows if a.kind == LOST]
    assert [a.seq for a in lost_pcap] == [lost_live[0].seq]
    for ladder in (live, from_pcap):
        assert any(a.kind == RETRANSMISSION and a.seq == lost_live[0].seq for a in ladder.arrows)

    # The states both stacks reported, and the states inferred from the wire, are the same.
    for side in (LEFT, RIGHT):
        assert from_pcap.states_of(side) == live.states_of(side), side
    assert live.states_of(LEFT)[-1] == "TIME-WAIT" and live.states_of(RIGHT)[-1] == "CLOSED"
    assert not any(mark.inferred for mark in live.marks)
    assert all(mark.inferred for mark in from_pcap.marks)
