"""Any segment at all, in any state: no exception, and the connection stays consistent.

Hypothesis throws arbitrary flags, sequence and acknowledgement numbers (mostly near the ones that
matter), windows, options and payloads at connections in each state."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tcp_script import *  # noqa: F403
from ustack.tcp import State
from ustack.tcp.seq import seq_add, seq_le

from test_options import established_with_timestamps  # window scaling, SACK and timestamps on

FIXTURES = [
    syn_sent, listening, syn_received, established, fin_wait_1, fin_wait_2, close_wait, last_ack,
    closing, time_wait, established_with_timestamps,
]


def near(base):
    return st.one_of(st.integers(-3000, 20000).map(lambda n: seq_add(base, n)), st.integers(0, 0xFFFFFFFF))


options = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(0, 0xFFFF),
    window_scale=st.none() | st.integers(0, 20),
    sack_permitted=st.booleans(),
    sack_blocks=st.lists(st.tuples(near(REMOTE_ISS), near(REMOTE_ISS)), max_size=4).map(tuple),
    timestamps=st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
)

segments = st.builds(
    lambda seq, ack, flags, window, urgent, opts, payload: incoming(seq, ack, flags, window, urgent_pointer=urgent, options=opts, payload=payload),
    near(REMOTE_ISS),
    near(LOCAL_ISS),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    options,
    st.binary(max_size=3000),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.lists(segments, min_size=1, max_size=6), st.lists(st.floats(0, 5), min_size=1, max_size=6))
def test_arbitrary_segments_never_break_a_connection(fixture, arriving, pauses):
    script = fixture()
    connection = script.connection
    for segment, pause in zip(arriving, pauses + [0.0] * len(arriving)):
        script.now += pause
        connection.on_timer(script.now) if (connection.next_deadline() or 1e9) <= script.now else None
        connection.receive(segment, script.now)
        for out in connection.transmit(script.now):
            assert isinstance(out, TcpSegment) and 0 <= out.window <= 0xFFFF
            assert 0 <= out.seq <= 0xFFFFFFFF and 0 <= out.ack <= 0xFFFFFFFF
        assert isinstance(connection.state, State)
        if connection.state is not State.LISTEN and connection.irs is not None:
            assert seq_le(connection.snd_una, connection.snd_max)
        connection.snapshot()
        if connection.readable:
            connection.recv(1 << 20, script.now)
