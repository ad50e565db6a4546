"""HyStart++ (RFC 9406) on virtual time: rounds of ACKs, each with its RTT samples."""

from __future__ import annotations

from ustack.tcp.congestion.cubic import Cubic
from ustack.tcp.congestion.hystart import (
    CONSERVATIVE, CSS_GROWTH_DIVISOR, CSS_ROUNDS, DONE, N_RTT_SAMPLE, SLOW_START, HyStartPlusPlus,
)

MSS = 1000
SEGMENTS = 10  # per round; more than N_RTT_SAMPLE, so every round has enough samples


def one_round(hystart: HyStartPlusPlus, rtt: float) -> list[int]:
    """A round of SEGMENTS segments, each ACKed alone with an RTT sample; returns the growths."""
    growths = []
    for i in range(SEGMENTS):
        hystart.on_rtt_sample(rtt)
        growths.append(hystart.on_ack(MSS, (SEGMENTS - i) * MSS, MSS))
    return growths


def after_rounds(*rtts: float) -> HyStartPlusPlus:
    """A HyStart++ that has seen one round at each of these RTTs."""
    hystart = HyStartPlusPlus()
    for rtt in rtts:
        one_round(hystart, rtt)
    return hystart


def test_the_constants_are_the_rfcs():
    assert (N_RTT_SAMPLE, CSS_GROWTH_DIVISOR, CSS_ROUNDS) == (8, 4, 5)


def test_a_steady_rtt_keeps_standard_slow_start():
    hystart = HyStartPlusPlus()
    for _ in range(6):
        assert one_round(hystart, 0.100) == [MSS] * SEGMENTS
    assert hystart.phase is SLOW_START


def test_a_rise_below_the_threshold_is_not_a_delay_increase():
    # RttThresh = clamp(100 ms / 8, 4 ms, 16 ms) = 12.5 ms; 110 ms is below 112.5 ms.
    hystart = after_rounds(0.100, 0.100, 0.110)
    assert hystart.phase is SLOW_START


def test_an_rtt_increase_enters_css_and_css_rounds_later_slow_start_ends():
    hystart = after_rounds(0.100, 0.100)
    growths = one_round(hystart, 0.115)  # 115 ms >= 100 + 12.5 ms
    assert hystart.phase is CONSERVATIVE
    # Once N_RTT_SAMPLE samples of the round showed it, growth is a quarter (RFC 9406 4.2).
    assert growths[-1] == MSS // CSS_GROWTH_DIVISOR
    assert MSS in growths[:N_RTT_SAMPLE - 1]
    rounds = 0
    ended = False
    while not ended and rounds < 10:
        growths = one_round(hystart, 0.115)
        rounds += 1
        ended = -1 in growths
    # The round that entered CSS counts as the first of CSS_ROUNDS (RFC 9406 4.2): slow start
    # ends when the fifth completes, at the start of the next.
    assert ended and rounds == CSS_ROUNDS
    assert hystart.phase is DONE


def test_an_rtt_back_below_the_baseline_was_jitter_and_slow_start_resumes():
    hystart = after_rounds(0.100, 0.100, 0.120)
    assert hystart.phase is CONSERVATIVE and hystart.css_baseline_min_rtt == 0.120
    growths = one_round(hystart, 0.101)  # below the CSS baseline of 120 ms
    assert hystart.phase is SLOW_START
    assert growths[-1] == MSS


def test_the_rtt_thresh_is_clamped_between_4_and_16_ms():
    for base, rise, enters in ((0.010, 0.0039, False), (0.010, 0.0041, True),
                               (0.400, 0.0159, False), (0.400, 0.0161, True)):
        hystart = after_rounds(base, base, base + rise)
        assert (hystart.phase is CONSERVATIVE) is enters, (base, rise)


def test_cubic_leaves_slow_start_on_a_delay_increase_before_any_loss():
    cc = Cubic(MSS)
    now = 0.0
    rtt = 0.050
    rounds = 0
    while cc.cwnd < cc.ssthresh and rounds < 30:
        flight = cc.cwnd
        segments = flight // MSS
        if rounds >= 3:
            rtt = 0.080  # the queue starts to build after three round trips
        for i in range(segments):
            cc.on_rtt_sample(rtt, rtt, now)
            cc.on_ack(MSS, flight, now)  # the sender refills: cwnd-limited
            if cc.cwnd >= cc.ssthresh:
                break
        now += rtt
        rounds += 1
    assert cc.ssthresh == cc.cwnd  # RFC 9406 4.2: CSS over: ssthresh = cwnd, no loss needed
    assert cc.hystart.phase is DONE
    assert rounds < 30
    # Three rounds of doubling, CSS_ROUNDS rounds of quarter growth (the fourth, whose RTT rose,
    # is the first), and the first ACK of the next round ends slow start: far below what
    # doubling all the way would have reached.
    assert rounds == 3 + CSS_ROUNDS + 1
    assert cc.cwnd < 10 * MSS * 2 ** rounds / 10
