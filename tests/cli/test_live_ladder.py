"""The one live-ladder pipeline (ustack/trace/live.py) without a network: LiveLadders (`ustack
serve/connect --ladder`) and the labs' SceneWatch on the link chain ustack.network builds
(FaultInjector > WireTap > device), driven the way the asyncio runtime drives it, with scripted
drops, so that what is drawn lost, and where, is known exactly."""

from __future__ import annotations

import io
import itertools
from types import SimpleNamespace

from scapy.layers.inet import IP, TCP

from ustack.labs.watch import SceneWatch
from ustack.link import FaultInjector, Link
from ustack.stack import StackEvent
from ustack.tcp.events import StateChanged
from ustack.tcp.state import State
from ustack.trace import LadderRecorder
from ustack.trace.live import LiveLadders, WireTap, WireWatch
from ustack.trace.model import LEFT, LOST, NORMAL, RETRANSMISSION, RIGHT
from ustack.wire import address_value

KERNEL, USTACK = "10.77.0.1", "10.77.0.2"
KERNEL_ISN, USTACK_ISN = 5000, 9000


_identification = itertools.count(1)  # each packet its own IP ID: a resend is not a network duplicate


def from_kernel(flags: str, seq: int, ack: int = 0, payload: bytes = b"", port: int = 40000) -> bytes:
    return bytes(IP(src=KERNEL, dst=USTACK, id=next(_identification))
                 / TCP(sport=port, dport=80, seq=seq, ack=ack, flags=flags) / payload)


def from_ustack(flags: str, seq: int, ack: int = 0, payload: bytes = b"", port: int = 40000) -> bytes:
    return bytes(IP(src=USTACK, dst=KERNEL, id=next(_identification))
                 / TCP(sport=80, dport=port, seq=seq, ack=ack, flags=flags) / payload)


class Device(Link):
    """The wire: what arrive() queues comes out of receive_batch; what is sent is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.incoming: list[bytes] = []
        self.sent: list[bytes] = []

    def arrive(self, *packets: bytes) -> None:
        self.incoming.extend(packets)

    def receive_batch(self, now, max_packets=64):
        batch, self.incoming = self.incoming[:max_packets], self.incoming[max_packets:]
        return batch

    def send(self, packet, now):
        self.sent.append(packet)

    def fileno(self):
        return -1


class Runtime:
    """What AsyncStack does with the link and its observers, reduced to the calls that matter."""

    def __init__(self, ladders: WireWatch) -> None:
        self.device = Device()
        self.injector = FaultInjector(WireTap(self.device, ladders), seed=1, on_drop=ladders.on_drop)
        self.ladders = ladders
        self.connection = SimpleNamespace(local_address=address_value(USTACK), local_port=80,
                                          remote_address=address_value(KERNEL), remote_port=40000)

    def arrive(self, now: float, *packets: bytes, changes: dict | None = None) -> list[bytes]:
        """One batch off the wire; `changes`: packet -> the (old, new) states it makes us go through."""
        self.device.arrive(*packets)
        taken = self.injector.receive_batch(now)
        for packet in taken:  # the stack takes them one by one, each followed by its events
            self.ladders.observe(now, "<", packet)
            for old, new in (changes or {}).get(packet, ()):
                self.state(now, old, new)
        return taken

    def send(self, now: float, *packets: bytes) -> None:
        for packet in packets:
            self.ladders.observe(now, ">", packet)
        self.injector.send_batch(list(packets), now)

    def state(self, now: float, old: State, new: State, connection=None) -> None:
        event = StackEvent(connection or self.connection, StateChanged(old, new, "test"))
        self.ladders.observe(now, "event", event)


def test_drops_are_drawn_lost_in_wire_order_with_exact_states():
    output = io.StringIO()
    ladders = LiveLadders(output=output)
    runtime = Runtime(ladders)
    injector = runtime.injector
    syn = from_kernel("S", KERNEL_ISN)
    syn_ack = from_ustack("SA", USTACK_ISN, KERNEL_ISN + 1)
    first, second = from_kernel("PA", KERNEL_ISN + 1, USTACK_ISN + 1, bytes(100)), \
        from_kernel("PA", KERNEL_ISN + 101, USTACK_ISN + 1, bytes(100))
    injector.drop_when(lambda packet: packet == syn, direction="inbound")
    injector.drop_when(lambda packet: packet == syn_ack, direction="outbound")
    injector.drop_when(lambda packet: packet == first, direction="inbound")

    assert runtime.arrive(0.0, syn) == []  # lost on the way in: the stack never sees it
    assert runtime.arrive(1.0, syn) == [syn]
    runtime.state(1.0, State.CLOSED, State.LISTEN)
    runtime.state(1.0, State.LISTEN, State.SYN_RECEIVED)
    runtime.send(1.0, syn_ack)  # lost on the way out
    runtime.send(2.0, syn_ack)
    # One batch: the ACK, the first data segment (lost), the second one.
    ack = from_kernel("A", KERNEL_ISN + 1, USTACK_ISN + 1)
    assert runtime.arrive(2.1, ack, first, second) == [ack, second]
    assert ladders.printed == 0

    ladders.finish()
    text = output.getvalue()
    assert "(ustack stopped while this connection was in SYN-RECEIVED)" in text
    ladders.finish()  # twice: nothing more
    assert output.getvalue() == text and ladders.printed == 1


def test_the_arrows_and_marks_of_a_lossy_handshake():
    ladders = LiveLadders(output=io.StringIO())
    runtime = Runtime(ladders)
    syn = from_kernel("S", KERNEL_ISN)
    syn_ack = from_ustack("SA", USTACK_ISN, KERNEL_ISN + 1)
    ack = from_kernel("A", KERNEL_ISN + 1, USTACK_ISN + 1)
    first = from_kernel("PA", KERNEL_ISN + 1, USTACK_ISN + 1, bytes(100))
    second = from_kernel("PA", KERNEL_ISN + 101, USTACK_ISN + 1, bytes(100))
    runtime.injector.drop_when(lambda packet: packet == syn, direction="inbound")
    runtime.injector.drop_when(lambda packet: packet == syn_ack, direction="outbound")
    runtime.injector.drop_when(lambda packet: packet == first, direction="inbound")
    runtime.arrive(0.0, syn)
    runtime.arrive(1.0, from_kernel("S", KERNEL_ISN))  # the kernel's resend
    runtime.state(1.0, State.CLOSED, State.LISTEN)
    runtime.state(1.0, State.LISTEN, State.SYN_RECEIVED)
    runtime.send(1.0, syn_ack)
    runtime.send(2.0, from_ustack("SA", USTACK_ISN, KERNEL_ISN + 1))  # our resend
    runtime.arrive(2.1, ack, first, second, changes={ack: [(State.SYN_RECEIVED, State.ESTABLISHED)]})

    recorder = next(iter(ladders._connections.values())).recorder
    ladder = recorder.ladder()
    arrows = [(arrow.from_side, arrow.seq, arrow.length, arrow.kind) for arrow in ladder.arrows]
    assert arrows == [
        (RIGHT, KERNEL_ISN, 0, LOST),  # the kernel's first SYN, lost half way to us
        (RIGHT, KERNEL_ISN, 0, RETRANSMISSION),
        (LEFT, USTACK_ISN, 0, LOST),  # our SYN-ACK, lost half way to the kernel
        (LEFT, USTACK_ISN, 0, RETRANSMISSION),
        (RIGHT, KERNEL_ISN + 1, 0, NORMAL),
        (RIGHT, KERNEL_ISN + 1, 100, LOST),  # dropped in the middle of its batch: drawn in its place
        (RIGHT, KERNEL_ISN + 101, 100, NORMAL),  # so the segment after it is new, not a resend
    ]
    assert all("dropped by a scripted rule" in arrow.note for arrow in ladder.arrows if arrow.kind == LOST)
    # Our states are the reported ones (not inferred), LISTEN first, at the start of the diagram.
    ours = [mark for mark in ladder.marks if mark.side == LEFT]
    assert [(mark.state, mark.inferred) for mark in ours] == [
        (State.LISTEN, False), (State.SYN_RECEIVED, False), (State.ESTABLISHED, False)]
    assert ours[0].time == 0.0
    # ESTABLISHED is drawn under the ACK that caused it, before the lost segment that followed.
    items = ladder.items
    established = items.index(ours[2])
    assert items[established - 1] == ladder.arrows[4]


def test_a_closed_connection_is_printed_after_its_round_and_a_new_one_starts_fresh():
    output = io.StringIO()
    ladders = LiveLadders(output=output)
    scheduled = []
    ladders.schedule = scheduled.append
    runtime = Runtime(ladders)
    runtime.arrive(0.0, from_kernel("S", KERNEL_ISN))
    runtime.state(0.0, State.CLOSED, State.LISTEN)
    runtime.state(0.0, State.LISTEN, State.SYN_RECEIVED)
    runtime.arrive(0.5, from_kernel("R", KERNEL_ISN + 1))
    runtime.state(0.5, State.SYN_RECEIVED, State.CLOSED)
    assert ladders.printed == 0 and scheduled  # not in the middle of the round
    scheduled.pop()()
    assert ladders.printed == 1
    assert "[R]" in output.getvalue() and "CLOSED" in output.getvalue()
    # Stray segments of the finished connection start nothing; a new SYN does.
    runtime.arrive(0.6, from_kernel("A", KERNEL_ISN + 1, USTACK_ISN + 1))
    assert not ladders._connections
    runtime.arrive(0.7, from_kernel("S", KERNEL_ISN + 7))
    assert len(ladders._connections) == 1


def test_port_filter_and_a_refused_syn():
    output = io.StringIO()
    ladders = LiveLadders(output=output, port=7)
    runtime = Runtime(ladders)
    runtime.arrive(0.0, from_kernel("S", KERNEL_ISN))  # to port 80: not drawn
    assert not ladders._connections
    ladders.port = None
    runtime.arrive(0.0, from_kernel("S", KERNEL_ISN, port=40001))
    runtime.send(0.0, from_ustack("RA", 0, KERNEL_ISN + 1, port=40001))  # nobody listens
    ladders.print_ended()
    assert ladders.printed == 1 and "[R.]" in output.getvalue()


def test_a_lab_scene_draws_its_connection_with_the_rules_notes_and_the_last_loss():
    # The labs' side of the same pipeline: one recorder per scene, packets between ustack and the
    # kernel only, state changes of the scene's connection only, each scripted drop with its note.
    watch = SceneWatch(address_value(USTACK), address_value(KERNEL))
    runtime = Runtime(watch)
    injector = runtime.injector
    recorder = LadderRecorder(port=80, local_label="ustack", remote_label="kernel")
    watch.start_scene(recorder, 80)
    seen = []
    watch.listeners.append(lambda direction, packet, dropped: seen.append((direction, dropped)))
    syn = from_kernel("S", KERNEL_ISN)
    spoofed = bytes(IP(src="10.77.0.100", dst=USTACK) / TCP(sport=1234, dport=80, seq=1, flags="S"))
    last = from_kernel("PA", KERNEL_ISN + 1, USTACK_ISN + 1, bytes(10))
    injector.drop_when(watch.dropping(lambda packet: packet == syn, "the lab drops the first SYN"), 1, "inbound")
    injector.drop_when(watch.dropping(lambda packet: packet == last, "the lab drops the data"), 1, "inbound")

    runtime.arrive(0.0, syn, spoofed)  # the spoofed SYN is taken in but never drawn
    other = SimpleNamespace(local_address=address_value(USTACK), local_port=80,
                            remote_address=address_value("10.77.0.100"), remote_port=1234)
    runtime.state(0.0, State.CLOSED, State.LISTEN, connection=other)  # a spoofed source's: not drawn
    runtime.arrive(1.0, from_kernel("S", KERNEL_ISN))
    runtime.state(1.0, State.CLOSED, State.LISTEN)
    runtime.state(1.0, State.LISTEN, State.SYN_RECEIVED)
    runtime.send(1.0, from_ustack("SA", USTACK_ISN, KERNEL_ISN + 1))
    runtime.arrive(2.0, from_kernel("A", KERNEL_ISN + 1, USTACK_ISN + 1), last)
    runtime.state(2.0, State.SYN_RECEIVED, State.ESTABLISHED)
    # The lost data came last, with nothing after it: the scene's end draws it (session.cut()).
    assert len(recorder.ladder().arrows) == 4
    watch.draw_lost()
    ladder = recorder.ladder()
    assert [(arrow.from_side, arrow.kind, arrow.note) for arrow in ladder.arrows] == [
        (RIGHT, LOST, "the lab drops the first SYN"),
        (RIGHT, RETRANSMISSION, ladder.arrows[1].note),
        (LEFT, NORMAL, ""),
        (RIGHT, NORMAL, ""),
        (RIGHT, LOST, "the lab drops the data"),
    ]
    assert ladder.states_of(LEFT) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert seen == [("in", True), ("in", False), ("out", False), ("in", False), ("in", True)]
    # Between scenes nothing is drawn, and the listeners still hear the packets.
    watch.start_scene(None, None)
    runtime.send(3.0, from_ustack("A", USTACK_ISN + 1, KERNEL_ISN + 11))
    assert len(ladder.arrows) == 5 and seen[-1] == ("out", False)


def test_an_ipv6_connection_is_drawn_with_bracketed_endpoints_and_its_drops():
    """`ustack serve --ladder` over IPv6: the same pipeline, 16-byte addresses, [address]:port."""
    from scapy.layers.inet6 import IPv6

    from ustack.wire import address6_value

    kernel6, ustack6 = "fd00:77::1", "fd00:77::2"

    def packet(src, dst, sport, dport, flags, seq, ack=0, payload=b""):
        return bytes(IPv6(src=src, dst=dst, fl=next(_identification) & 0xFFFFF)
                     / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / payload)

    output = io.StringIO()
    ladders = LiveLadders(output=output)
    runtime = Runtime(ladders)
    runtime.connection = SimpleNamespace(local_address=address6_value(ustack6), local_port=80,
                                         remote_address=address6_value(kernel6), remote_port=40000)
    syn = packet(kernel6, ustack6, 40000, 80, "S", KERNEL_ISN)
    syn_ack = packet(ustack6, kernel6, 80, 40000, "SA", USTACK_ISN, KERNEL_ISN + 1)
    ack = packet(kernel6, ustack6, 40000, 80, "A", KERNEL_ISN + 1, USTACK_ISN + 1)
    runtime.injector.drop_when(lambda sent: sent == syn_ack, direction="outbound")
    runtime.arrive(0.0, syn)
    runtime.state(0.0, State.CLOSED, State.LISTEN)
    runtime.state(0.0, State.LISTEN, State.SYN_RECEIVED)
    runtime.send(0.0, syn_ack)  # lost on the way out
    runtime.send(1.0, packet(ustack6, kernel6, 80, 40000, "SA", USTACK_ISN, KERNEL_ISN + 1))
    runtime.arrive(1.1, ack, changes={ack: [(State.SYN_RECEIVED, State.ESTABLISHED)]})
    runtime.state(1.2, State.ESTABLISHED, State.CLOSED)
    ladders.print_ended()
    text = output.getvalue()
    assert ladders.printed == 1
    assert f"[{ustack6}]:80 (ustack) <-> [{kernel6}]:40000 (kernel), 4 segments" in text
    ladder_kinds = [line for line in text.splitlines() if "dropped by a scripted rule" in line]
    assert len(ladder_kinds) == 1  # the lost SYN-ACK, drawn as lost
    assert "SYN-RECEIVED" in text and "ESTABLISHED" in text
