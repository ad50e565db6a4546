"""CUBIC (RFC 9438) against the RFC's equations, on virtual time (the `now` each event carries).

Units: the RFC counts windows in segments; the algorithm keeps cwnd in bytes. MSS = 1000 keeps
the arithmetic readable: cwnd 100000 bytes is 100 segments.
"""

from __future__ import annotations

import pytest

from ustack.tcp import TcpConfig
from ustack.tcp.congestion import CONGESTION_CONTROLS, create_congestion_control
from ustack.tcp.congestion.cubic import ALPHA, BETA, C, Cubic, cubic_k, cubic_window

MSS = 1000


def cubic_after_loss(cwnd_segments: int = 100, now: float = 0.0) -> Cubic:
    """A CUBIC sender that saw a loss at `cwnd_segments` and has just ended fast recovery."""
    cc = Cubic(MSS)
    cc.ssthresh = 10 * MSS  # out of slow start
    cc.cwnd = cwnd_segments * MSS
    cc.on_enter_fast_recovery(cwnd_segments * MSS, now)
    # The full ACK of recovery with the window still full (NewReno, RFC 6582 3.2 option 1):
    # cwnd = ssthresh.
    cc.on_recovery_ack(cwnd_segments * MSS, 2 * cwnd_segments * MSS, now)
    assert not cc.in_recovery
    return cc


def ack_until(cc: Cubic, now: float, goal_segments: float, most: int = 5000) -> int:
    """One-segment ACKs of full (cwnd-limited) flights at time `now` until cwnd reaches the goal."""
    for count in range(most):
        if cc.cwnd >= goal_segments * MSS:
            return count
        cc.on_ack(MSS, cc.cwnd, now)
    return most


def test_the_constants_are_the_rfcs():
    assert C == 0.4 and BETA == 0.7
    assert ALPHA == pytest.approx(3 * 0.3 / 1.7)  # RFC 9438 4.3: 0.5294...


def test_cubic_is_registered_and_the_default():
    assert TcpConfig().congestion_control == "cubic"
    assert set(CONGESTION_CONTROLS) >= {"reno", "newreno", "cubic"}
    assert isinstance(create_congestion_control("cubic", MSS), Cubic)
    with pytest.raises(ValueError, match="unknown congestion control"):
        create_congestion_control("vegas", MSS)


def test_a_loss_reduces_by_beta_and_remembers_w_max():
    cc = Cubic(MSS)
    cc.ssthresh = 10 * MSS
    cc.cwnd = 100 * MSS
    cc.on_enter_fast_recovery(100 * MSS, 0.0)
    assert cc.ssthresh == 70 * MSS  # RFC 9438 4.6: ssthresh = FlightSize * beta_cubic
    assert cc.w_max == 100  # the window where the loss happened (no earlier W_max)
    assert cc.cwnd == 73 * MSS  # NewReno's fast recovery: ssthresh + 3 segments
    assert cc.in_recovery


def test_ssthresh_is_at_least_two_segments():
    cc = Cubic(MSS)
    cc.cwnd = 2 * MSS
    cc.on_enter_fast_recovery(2 * MSS, 0.0)
    assert cc.ssthresh == 2 * MSS


def test_k_is_the_time_to_climb_back_to_w_max():
    # RFC 9438 Figure 2: K = cbrt((W_max - cwnd_epoch) / C).
    assert cubic_k(100, 70) == pytest.approx((30 / 0.4) ** (1 / 3))  # 4.217 s
    assert cubic_k(100, 100) == 0.0 and cubic_k(100, 120) == 0.0
    k = cubic_k(100, 70)
    assert cubic_window(0, 100, k) == pytest.approx(70)  # the curve starts at cwnd_epoch
    assert cubic_window(k, 100, k) == pytest.approx(100)  # and is flat at W_max


@pytest.mark.parametrize("t", [1.0, 2.0, 3.0, 4.217, 5.0, 6.0, 7.0])
def test_cwnd_follows_the_cubic_curve(t):
    """W(t) at t seconds after the epoch began (RFC 9438 Figure 1 with C = 0.4): ACKs at time
    t pull cwnd up to W_cubic(t) (the RTT is ~0 here, so the target is W_cubic(t) itself) and no
    further: the increase is (target - cwnd)/cwnd per segment acknowledged."""
    cc = cubic_after_loss(100)
    assert cc.cwnd == 70 * MSS
    cc.on_ack(MSS, cc.cwnd, 0.0)  # the epoch starts with the first ACK of congestion avoidance
    assert cc.k == pytest.approx((30 / 0.4) ** (1 / 3))
    expected = 100 + 0.4 * (t - cc.k) ** 3
    ack_until(cc, t, expected - 1)
    for _ in range(300):  # more ACKs at the same instant do not pass the curve
        cc.on_ack(MSS, cc.cwnd, t)
    assert expected - 1 <= cc.cwnd / MSS <= expected + 0.01


def test_the_target_is_one_rtt_ahead_and_at_most_one_and_a_half_cwnd():
    cc = cubic_after_loss(100)
    cc.on_rtt_sample(0.5, 0.5, 0.0)  # smoothed RTT 0.5 s
    cc.on_ack(MSS, cc.cwnd, 0.0)
    ack_until(cc, 2.0, 200, most=400)
    # RFC 9438 4.4: the target is W_cubic(t + RTT) = W_cubic(2.5), not W_cubic(2).
    assert cc.cwnd / MSS == pytest.approx(100 + 0.4 * (2.5 - cc.k) ** 3, abs=1)
    # RFC 9438 4.2: one ACK never moves cwnd past 1.5 * cwnd, however far the curve is.
    before = cc.cwnd
    cc.on_ack(before, before, 60.0)
    assert cc.cwnd <= 1.5 * before + 1


def test_fast_convergence_lowers_w_max_when_losses_come_earlier():
    cc = cubic_after_loss(100)
    cc.cwnd = 90 * MSS  # the next loss comes below the last W_max: a new flow shares the path
    cc.on_enter_fast_recovery(90 * MSS, 5.0)
    assert cc.w_max == pytest.approx(90 * (1 + 0.7) / 2)  # RFC 9438 4.7: 76.5, not 90
    assert cc.ssthresh == 63 * MSS
    cc.on_recovery_ack(90 * MSS, 180 * MSS, 5.1)
    cc.cwnd = 110 * MSS
    cc.on_enter_fast_recovery(110 * MSS, 9.0)
    assert cc.w_max == 110  # above the last W_max: remembered as it is


def test_the_reno_friendly_region():
    """RFC 9438 4.3: with a small W_max and many round trips in little time (a short RTT), Reno
    would be ahead of the curve; cwnd follows W_est, which grows alpha_cubic per window."""
    cc = cubic_after_loss(10)
    assert cc.cwnd == 7 * MSS
    cc.on_ack(MSS, cc.cwnd, 0.0)  # epoch: K = cbrt(3 / 0.4) = 1.96 s
    t = 0.2
    for _ in range(40 * 7):  # 40 windows' worth of ACKs within 0.2 s
        cc.on_ack(MSS, cc.cwnd, t)
    curve = 10 + 0.4 * (t - cc.k) ** 3  # 7.7 segments
    assert cc.w_est > curve
    assert cc.cwnd / MSS == pytest.approx(cc.w_est, abs=1)
    assert cc.cwnd / MSS > curve + 5


def test_after_a_timeout_slow_start_then_the_curve_from_the_cwnd_it_reached():
    """RFC 9438 4.8: one segment, ssthresh by beta, slow start; then congestion avoidance with
    K from the cwnd at its start towards the W_max of the timeout."""
    cc = Cubic(MSS)
    cc.ssthresh = 10 * MSS
    cc.cwnd = 100 * MSS
    cc.on_retransmit_timeout(100 * MSS, 0.0)
    assert cc.cwnd == MSS and cc.ssthresh == 70 * MSS and cc.w_max == 100
    cc.on_retransmit_timeout(MSS, 1.0)  # a second timeout: the same episode, ssthresh held
    assert cc.ssthresh == 70 * MSS
    while cc.cwnd < cc.ssthresh:
        cc.on_ack(MSS, cc.cwnd, 2.0)  # standard slow start: HyStart++ is for the first one only
    assert cc.cwnd == 70 * MSS
    cc.on_ack(MSS, cc.cwnd, 3.0)
    assert cc.epoch_start == 3.0 and cc.k == pytest.approx(cubic_k(100, 70), abs=0.01)


def test_growth_waits_for_a_flight_cwnd_limited():
    cc = cubic_after_loss(100)
    for step in range(1000):
        cc.on_ack(MSS, 20 * MSS, 1.0 + step / 100)  # an application that sends 20 segments at a time
    assert cc.cwnd == 70 * MSS


def test_switching_algorithm_on_an_open_connection_keeps_the_window():
    import dataclasses

    from tests.tcp.tcp_script import CONFIG, established

    script = established(dataclasses.replace(CONFIG, congestion_control="cubic"))
    connection = script.connection
    assert connection.congestion.name == "cubic" and connection.snapshot().congestion_control == "cubic"
    cwnd = connection.congestion.cwnd
    connection.reconfigure(0.0, congestion_control="reno")  # TCP_CONGESTION
    assert connection.congestion.name == "reno" and connection.congestion.cwnd == cwnd
    assert connection.snapshot().congestion_control == "reno"
    with pytest.raises(ValueError):
        connection.reconfigure(0.0, congestion_control="vegas")
