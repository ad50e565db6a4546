"""The shortcuts of the ACK path give what the general code gives.

- RackState.on_delivered takes an ACK of in-order segments, each sent once, in one step
  (`_delivered_in_order`) instead of one by one: the same RACK variables and the same entries
  left, compared here with the general loop on seeded random flights;
- output.py builds its segments and their options as plain tuples: they must still hold every
  field of the NamedTuple, in order;
- with events off, no event object is made, and with events on the same events come as before.
"""

from __future__ import annotations

import random

import pytest

from ustack.tcp import Connection, Listener, State, TcpConfig
from ustack.tcp.rack import RackState
from ustack.tcp.send_side import SACKED, SENT_AGAIN
from ustack.tcp.seq import seq_add
from ustack.tcp.isn import IsnGenerator
from ustack.wire.tcp import TcpOptions, TcpSegment

RACK_VARIABLES = RackState.__slots__


class FakeSendSide:
    """The part of SendSide that on_delivered reads and changes."""

    def __init__(self, una: int, sent_times: list) -> None:
        self.una = una
        self.sent_times = sent_times

    def sent_time_delivered(self, index: int) -> None:
        self.sent_times[index][3] |= SACKED

    def forget_first_sent_times(self, count: int) -> None:
        del self.sent_times[:count]


def random_flight(rng: random.Random, start: int) -> list:
    """Entries [start, end, sent_at, flags] in sequence order: first transmissions at rising
    times, now and then one sent again later (SENT_AGAIN) or SACKed, an equal send time, or a
    time out of order."""
    times, seq, now = [], start, 1.0
    for _ in range(rng.randint(1, 12)):
        length = rng.choice((1, 536, 1448))
        if rng.random() < 0.7:
            now += rng.choice((0.0, 0.001, 0.0005))
        flags = 0
        sent_at = now
        roll = rng.random()
        if roll < 0.1:
            flags, sent_at = SENT_AGAIN, now + rng.choice((0.01, -0.5))
        elif roll < 0.15:
            flags = SACKED
        elif roll < 0.2:
            sent_at = now - 0.3  # sent earlier than the one before it, yet never resent: the shortcut must not apply
        times.append([seq, seq_add(seq, length), sent_at, flags])
        seq = seq_add(seq, length)
    return times


def random_rack(rng: random.Random, start: int) -> RackState:
    rack = RackState()
    if rng.random() < 0.7:
        rack.xmit_ts = rng.choice((0.5, 1.0, 1.002))
        rack.end_seq = seq_add(start, rng.choice((-100, 0, 1448, 5000)))
        rack.fack = seq_add(start, rng.choice((-100, 0, 1448, 5000)))
        rack.min_rtt = rng.choice((None, 0.001, 0.2))
        rack.rtt = rack.min_rtt or 0.0
    return rack


@pytest.mark.parametrize("seed", range(300))
def test_in_order_delivery_matches_the_general_loop(seed):
    rng = random.Random(seed)
    print(f"seed {seed}")
    start = rng.choice((0, 1000, 0xFFFFF000))  # 0xFFFFF000: the flight wraps past 2**32
    times = random_flight(rng, start)
    una = times[rng.randrange(len(times))][1] if rng.random() < 0.9 else start  # an ACK of a prefix, or of nothing
    rack = random_rack(rng, start)
    now = 2.0

    shortcut, general = RackState(), RackState()
    for name in RACK_VARIABLES:
        setattr(shortcut, name, getattr(rack, name))
        setattr(general, name, getattr(rack, name))
    snd_shortcut = FakeSendSide(una, [list(entry) for entry in times])
    snd_general = FakeSendSide(una, [list(entry) for entry in times])
    shortcut.on_delivered(snd_shortcut, None, now)
    # A `sacked` that finds nothing SACKed takes the general loop over the same deliveries.
    general.on_delivered(snd_general, lambda start, end: False, now)

    assert [getattr(shortcut, name) for name in RACK_VARIABLES] == [getattr(general, name) for name in RACK_VARIABLES]
    assert snd_shortcut.sent_times == snd_general.sent_times


def test_in_order_delivery_takes_the_newest_segment():
    """Three segments sent at 1.0, 1.1 and 1.2, all acknowledged at 1.5: RACK's newest delivered
    segment is the third, its RTT 0.3 s is RACK.rtt and min_RTT; nothing was reordered."""
    rack = RackState()
    snd = FakeSendSide(4500, [[0, 1500, 1.0, 0], [1500, 3000, 1.1, 0], [3000, 4500, 1.2, 0], [4500, 6000, 1.3, 0]])
    rack.on_delivered(snd, None, 1.5)
    assert (rack.xmit_ts, rack.end_seq, rack.fack) == (1.2, 4500, 4500)
    assert rack.rtt == pytest.approx(0.3) and rack.min_rtt == pytest.approx(0.3)
    assert not rack.reordering_seen
    assert snd.sent_times == [[4500, 6000, 1.3, 0]]


def test_in_order_delivery_below_fack_is_reordering():
    """RFC 8985 6.2 step 3: a segment delivered below one delivered earlier (FACK) was reordered."""
    rack = RackState()
    rack.fack = 3000
    snd = FakeSendSide(1500, [[0, 1500, 1.0, 0], [1500, 3000, 1.1, 0]])
    rack.on_delivered(snd, None, 1.5)
    assert rack.reordering_seen and rack.fack == 3000


# ------------------------------------------------------------------ segments as plain tuples
def established_pair(record_events: bool):
    config = TcpConfig(sack=True, timestamps=True)
    now = 0.0
    client = Connection.open_active(config, 0x0A000001, 40000, 0x0A000002, 80, 1000, now, record_events=record_events)
    listener = Listener(config, 0x0A000002, 80, isn_generator=IsnGenerator(fixed_isn=5000))
    (syn,) = client.transmit(now)
    server = listener.receive(0x0A000001, syn, now, record_events=record_events)
    for segment in server.transmit(now):
        client.receive(segment, now)
    for segment in client.transmit(now):
        server.receive(segment, now)
    assert client.state is State.ESTABLISHED and server.state is State.ESTABLISHED
    return client, server


def test_built_segments_hold_every_field():
    client, server = established_pair(True)
    client.send(b"x" * 3000, 0.01)
    segments = client.transmit(0.01)
    assert len(segments) == 3  # two full segments and the rest
    for segment in segments:
        assert type(segment) is TcpSegment and len(segment) == len(TcpSegment._fields)
        assert type(segment.options) is TcpOptions and len(segment.options) == len(TcpOptions._fields)
        assert segment.options.fast_open is None and segment.options.fast_open_experimental is False
        assert segment.options.timestamps == (10, segment.options.timestamps[1])
        assert segment == TcpSegment(*segment)  # equal to the one the NamedTuple would make


# ------------------------------------------------------------------ events
def one_exchange(record_events: bool):
    """A request, its answer, the answer's ACK, then the server closes: the events of each side."""
    client, server = established_pair(record_events)
    now = 0.01
    client.send(b"GET / HTTP/1.0\r\n\r\n", now)
    for segment in client.transmit(now):
        server.receive(segment, now)
    server.recv(100, now)
    server.send(b"HTTP/1.0 200 OK\r\n\r\n", now)
    server.close(now)
    for segment in server.transmit(now):
        client.receive(segment, now)
    for segment in client.transmit(now):
        server.receive(segment, now)
    return client, server


def test_events_off_makes_no_events():
    client, server = one_exchange(record_events=False)
    assert client.events() == [] and server.events() == []
    assert client.state is State.CLOSE_WAIT and server.state is State.FIN_WAIT_2


def test_events_on_reports_data_and_end_of_stream():
    client, server = one_exchange(record_events=True)
    names = [type(event).__name__ for event in client.events()]
    assert "DataReadable" in names and "EndOfStream" in names
    assert names.index("DataReadable") < names.index("EndOfStream")
    assert client.state is State.CLOSE_WAIT
