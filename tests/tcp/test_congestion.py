"""Congestion control (RFC 5681, RFC 3465, RFC 6928) and the registry of algorithms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ustack.tcp.congestion import (
    CONGESTION_CONTROLS,
    INITIAL_SSTHRESH,
    CongestionControl,
    Reno,
    create_congestion_control,
    initial_window,
)

MSS = 1460


def reno() -> CongestionControl:
    return create_congestion_control("reno", MSS)


def one_round_trip(cc: CongestionControl, segments_per_ack: int = 1) -> None:
    """The sender fills cwnd with full segments and every one is acknowledged, with one ACK per
    `segments_per_ack` segments (2 for a receiver that delays its ACKs, RFC 1122 4.2.3.2). The
    sender has more to send, so it refills cwnd after every ACK: each ACK answers a flight of
    cwnd, the case in which cwnd may grow (RFC 7661)."""
    segments = cc.cwnd // MSS
    while segments > 0:
        acked = min(segments, segments_per_ack)
        cc.on_ack(acked * MSS, cc.cwnd, 0.0)
        segments -= acked


# --- the initial window -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mss, expected",
    [
        (1460, 14600),  # min(14600, max(2920, 14600))
        (536, 5360),  # 10 small segments
        (9000, 18000),  # jumbo: two segments, the floor of max(2*MSS, 14600)
        (4000, 14600),  # 14600 bytes is less than 10 segments
        (100, 1000),
    ],
)
def test_initial_window_follows_rfc_6928(mss, expected):
    assert initial_window(mss) == expected
    assert create_congestion_control("reno", mss).cwnd == expected


def test_initial_window_for_other_segment_counts():
    assert initial_window(1460, 1) == 1460
    assert initial_window(1460, 2) == 2920
    assert initial_window(1460, 4) == 4 * 1460
    assert initial_window(9000, 4) == 18000  # never under two segments
    with pytest.raises(ValueError):
        initial_window(1460, 0)
    with pytest.raises(ValueError):
        initial_window(0, 10)


def test_starting_state():
    cc = reno()
    assert cc.name == "reno"
    assert cc.cwnd == 10 * MSS
    assert cc.ssthresh == INITIAL_SSTHRESH and cc.ssthresh > 2**30
    assert cc.in_recovery is False


# --- slow start -------------------------------------------------------------------------------


def test_slow_start_adds_at_most_two_mss_per_ack():
    # RFC 5681 3.1 equation 2 with RFC 3465 2.2's L = 2 MSS
    cc = reno()
    cc.on_ack(MSS, 10 * MSS, 0.0)
    assert cc.cwnd == 11 * MSS
    cc.on_ack(500, 10 * MSS, 0.0)  # a partial segment adds only what it acknowledged
    assert cc.cwnd == 11 * MSS + 500
    cc.on_ack(2 * MSS, 10 * MSS, 0.0)  # a delayed ACK of two segments adds both
    assert cc.cwnd == 13 * MSS + 500
    cc.on_ack(4 * MSS, 10 * MSS, 0.0)  # a stretch ACK still adds only two MSS
    assert cc.cwnd == 15 * MSS + 500


def test_an_ack_of_nothing_changes_nothing():
    cc = reno()
    cc.on_ack(0, 10 * MSS, 0.0)
    assert cc.cwnd == 10 * MSS


def test_slow_start_doubles_cwnd_every_round_trip_with_an_ack_per_segment():
    cc = reno()
    windows = []
    for _ in range(4):
        one_round_trip(cc)
        windows.append(cc.cwnd // MSS)
    assert windows == [20, 40, 80, 160]


def test_slow_start_with_delayed_acks_still_doubles_every_round_trip():
    # One ACK per two segments with L = 2 MSS (RFC 3465 2.2): each ACK adds the two segments it
    # acknowledges, so a round trip doubles cwnd as with an ACK per segment (with L = 1 MSS it
    # would be 15, 23, 35: 1.5x per round trip).
    cc = reno()
    windows = []
    for _ in range(3):
        one_round_trip(cc, segments_per_ack=2)
        windows.append(cc.cwnd // MSS)
    assert windows == [20, 40, 80]


# --- congestion avoidance -------------------------------------------------------------------


def cc_in_congestion_avoidance(segments: int) -> CongestionControl:
    """A Reno sender whose cwnd == ssthresh == segments * MSS, reached by real events."""
    cc = reno()
    cc.on_enter_fast_recovery(2 * segments * MSS, 0.0)
    assert cc.on_recovery_ack(MSS, 2 * segments * MSS, 0.0) is True
    assert cc.cwnd == cc.ssthresh == segments * MSS
    return cc


@pytest.mark.parametrize("segments_per_ack", [1, 2, 3])
def test_congestion_avoidance_adds_about_one_mss_per_round_trip(segments_per_ack):
    cc = cc_in_congestion_avoidance(20)
    windows = []
    for _ in range(5):
        one_round_trip(cc, segments_per_ack)
        windows.append(cc.cwnd // MSS)
    # Byte counting (RFC 3465 2.1): one MSS per cwnd of acknowledged bytes, whatever the ACK
    # pattern.
    assert windows == [21, 22, 23, 24, 25]
    assert cc.cwnd % MSS == 0  # integer bytes, whole segments


def test_congestion_avoidance_does_not_grow_before_a_full_window_is_acknowledged():
    cc = cc_in_congestion_avoidance(10)
    for _ in range(9):
        cc.on_ack(MSS, 10 * MSS, 0.0)
    assert cc.cwnd == 10 * MSS
    cc.on_ack(MSS, 10 * MSS, 0.0)
    assert cc.cwnd == 11 * MSS


# --- fast retransmit / fast recovery ----------------------------------------------------------


def test_fast_recovery_entry_inflation_and_exit():
    cc = reno()
    for _ in range(10):
        one_round_trip(cc)  # grow well past the flight used below
    # RFC 5681 3.2 step 2: ssthresh = max(FlightSize / 2, 2*MSS) -- FlightSize, not cwnd.
    cc.on_enter_fast_recovery(40 * MSS, 1.0)
    assert cc.in_recovery is True
    assert cc.ssthresh == 20 * MSS
    # step 3: cwnd = ssthresh + 3*MSS for the three duplicate ACKs
    assert cc.cwnd == 23 * MSS
    # step 4: each further duplicate ACK inflates by one MSS
    cc.on_duplicate_ack_in_recovery()
    cc.on_duplicate_ack_in_recovery()
    assert cc.cwnd == 25 * MSS
    # step 6: the ACK of new data deflates to ssthresh and ends recovery
    assert cc.on_recovery_ack(10 * MSS, 40 * MSS, 1.1) is True
    assert cc.in_recovery is False
    assert cc.cwnd == 20 * MSS and cc.ssthresh == 20 * MSS
    # ...and from there it is congestion avoidance, not slow start
    cc.on_ack(MSS, 20 * MSS, 1.2)
    assert cc.cwnd == 20 * MSS


def test_fast_recovery_with_a_tiny_flight_keeps_two_segments():
    cc = reno()
    cc.on_enter_fast_recovery(3 * MSS, 0.0)
    assert cc.ssthresh == 2 * MSS
    assert cc.cwnd == 5 * MSS


def test_flight_size_halving_rounds_down_to_whole_bytes():
    cc = reno()
    cc.on_enter_fast_recovery(10 * MSS + 1, 0.0)
    assert cc.ssthresh == (10 * MSS + 1) // 2
    assert isinstance(cc.ssthresh, int) and isinstance(cc.cwnd, int)


def test_a_duplicate_ack_outside_recovery_does_not_inflate():
    cc = reno()
    cc.on_duplicate_ack_in_recovery()
    assert cc.cwnd == 10 * MSS


# --- retransmission timeout -------------------------------------------------------------------


def test_timeout_collapses_cwnd_to_one_segment_and_halves_the_flight():
    cc = reno()
    one_round_trip(cc)
    # RFC 5681 3.1 equation 4 and the loss window LW = 1 MSS
    cc.on_retransmit_timeout(16 * MSS, 2.0)
    assert cc.cwnd == MSS
    assert cc.ssthresh == 8 * MSS
    assert cc.in_recovery is False
    # slow start again from one segment
    one_round_trip(cc)
    assert cc.cwnd == 2 * MSS


def test_timeout_during_fast_recovery_leaves_recovery():
    cc = reno()
    cc.on_enter_fast_recovery(20 * MSS, 0.0)
    cc.on_retransmit_timeout(20 * MSS, 1.0)
    assert cc.in_recovery is False
    assert cc.cwnd == MSS and cc.ssthresh == 10 * MSS


def test_timeout_with_a_tiny_flight_keeps_ssthresh_at_two_segments():
    cc = reno()
    cc.on_retransmit_timeout(MSS, 1.0)
    assert cc.ssthresh == 2 * MSS and cc.cwnd == MSS


def test_repeated_timeouts_of_the_same_segment_hold_ssthresh():
    # RFC 5681 3.1: when the segment was already retransmitted by the timer, ssthresh is held.
    cc = reno()
    cc.on_retransmit_timeout(20 * MSS, 1.0)
    assert cc.ssthresh == 10 * MSS
    cc.on_retransmit_timeout(MSS, 3.0)  # the same segment, timed out again
    assert cc.ssthresh == 10 * MSS and cc.cwnd == MSS
    # After new data is acknowledged a later timeout is a new loss and halves again.
    cc.on_ack(MSS, MSS, 3.5)
    cc.on_retransmit_timeout(4 * MSS, 5.0)
    assert cc.ssthresh == 2 * MSS


# --- idle restart and MSS changes -------------------------------------------------------------


def test_idle_restart_caps_cwnd_at_the_initial_window():
    # RFC 5681 4.1: restart window = min(IW, cwnd)
    cc = reno()
    one_round_trip(cc)
    assert cc.cwnd == 20 * MSS
    cc.on_idle_restart(10.0)
    assert cc.cwnd == 10 * MSS
    small = reno()
    small.on_retransmit_timeout(4 * MSS, 1.0)
    small.on_idle_restart(10.0)
    assert small.cwnd == MSS  # never grows


def test_set_mss_before_any_ack_recomputes_the_initial_window():
    cc = create_congestion_control("reno", 536)
    assert cc.cwnd == 5360
    cc.set_mss(1460)
    assert cc.mss == 1460 and cc.cwnd == 14600
    cc.on_ack(1460, 14600, 0.0)
    cc.set_mss(1000)  # data already acknowledged: the window is kept, growth uses the new MSS
    assert cc.cwnd == 14600 + 1460
    cc.on_ack(5000, 14600, 0.0)
    assert cc.cwnd == 14600 + 1460 + 2 * 1000
    with pytest.raises(ValueError):
        cc.set_mss(0)


def test_initial_window_segments_is_honoured():
    assert create_congestion_control("reno", MSS, initial_window_segments=4).cwnd == 4 * MSS


# --- the registry -----------------------------------------------------------------------------


def test_registry_knows_reno_and_builds_fresh_instances():
    assert CONGESTION_CONTROLS["reno"] is Reno
    first, second = reno(), reno()
    assert isinstance(first, CongestionControl) and first is not second
    one_round_trip(first)
    assert second.cwnd == 10 * MSS  # no state shared between connections


def test_unknown_algorithm_names_the_known_ones():
    with pytest.raises(ValueError) as error:
        create_congestion_control("bbr", MSS)
    assert "bbr" in str(error.value)
    for name in CONGESTION_CONTROLS:
        assert name in str(error.value)


# --- invariants of every registered algorithm -------------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(1, 64 * MSS), st.integers(0, 2**24)),
        st.tuples(st.just("enter"), st.integers(0, 2**24)),
        st.just(("dup",)),
        st.tuples(st.just("recovery_ack"), st.integers(1, 64 * MSS), st.integers(0, 2**24)),
        st.tuples(st.just("timeout"), st.integers(0, 2**24)),
        st.just(("idle",)),
    ),
    max_size=60,
)


@pytest.mark.parametrize("name", sorted(CONGESTION_CONTROLS))
@settings(derandomize=True, max_examples=300, deadline=None)
@given(sequence=events)
def test_every_algorithm_keeps_sane_windows_under_any_event_sequence(name, sequence):
    cc = create_congestion_control(name, MSS)
    now = 0.0
    for event in sequence:
        now += 0.01
        kind = event[0]
        if kind == "ack" and not cc.in_recovery:
            cc.on_ack(event[1], event[2], now)
        elif kind == "enter" and not cc.in_recovery:
            cc.on_enter_fast_recovery(event[1], now)
            assert cc.in_recovery
        elif kind == "dup" and cc.in_recovery:
            cc.on_duplicate_ack_in_recovery()
        elif kind == "recovery_ack" and cc.in_recovery:
            ended = cc.on_recovery_ack(event[1], event[2], now)
            assert ended == (not cc.in_recovery)
        elif kind == "timeout":
            cc.on_retransmit_timeout(event[1], now)
            assert not cc.in_recovery and cc.cwnd == MSS
        elif kind == "idle":
            cc.on_idle_restart(now)
        assert isinstance(cc.cwnd, int) and isinstance(cc.ssthresh, int)
        assert cc.cwnd >= MSS
        assert cc.ssthresh >= 2 * MSS


# --- NewReno (RFC 6582) -----------------------------------------------------------------------


def test_newreno_stays_in_recovery_on_partial_acks_and_deflates():
    cc = create_congestion_control("newreno", MSS)
    assert isinstance(cc, Reno) and cc.name == "newreno"
    cc.on_enter_fast_recovery(20 * MSS, 0.0)  # "recover" is 20 segments ahead
    assert cc.ssthresh == 10 * MSS and cc.cwnd == 13 * MSS
    cc.on_duplicate_ack_in_recovery()
    assert cc.cwnd == 14 * MSS
    # A partial ACK of 3 segments: deflate by 3 MSS, add back 1 MSS; still in recovery.
    assert cc.on_recovery_ack(3 * MSS, 20 * MSS, 0.1) is False
    assert cc.in_recovery and cc.cwnd == 12 * MSS
    # A partial ACK of less than one MSS: deflate only.
    assert cc.on_recovery_ack(500, 17 * MSS, 0.2) is False
    assert cc.cwnd == 12 * MSS - 500
    # The rest of the entry flight: a full ACK ends recovery with
    # cwnd = min(ssthresh, max(FlightSize, MSS) + MSS), FlightSize counted after this ACK.
    remaining = 20 * MSS - 3 * MSS - 500
    assert cc.on_recovery_ack(remaining, remaining + 6 * MSS, 0.3) is True
    assert not cc.in_recovery
    assert cc.cwnd == 7 * MSS  # 6 MSS still in flight (sent during recovery) + 1 MSS
    assert cc.ssthresh == 10 * MSS


def test_newreno_full_ack_with_a_large_flight_uses_ssthresh():
    cc = create_congestion_control("newreno", MSS)
    cc.on_enter_fast_recovery(20 * MSS, 0.0)
    assert cc.on_recovery_ack(20 * MSS, 40 * MSS, 0.1) is True
    assert cc.cwnd == cc.ssthresh == 10 * MSS


def test_newreno_timeout_forgets_the_recovery():
    cc = create_congestion_control("newreno", MSS)
    cc.on_enter_fast_recovery(20 * MSS, 0.0)
    cc.on_retransmit_timeout(20 * MSS, 1.0)
    assert not cc.in_recovery and cc.cwnd == MSS
    cc.on_enter_fast_recovery(4 * MSS, 2.0)
    assert cc.on_recovery_ack(4 * MSS, 4 * MSS, 2.1) is True  # only the new flight counts
