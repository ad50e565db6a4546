"""RFC 6298: SRTT, RTTVAR and the retransmission timeout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ustack.tcp.rtt import RttEstimator


def test_before_any_measurement_the_rto_is_the_initial_one():
    # RFC 6298 2.1
    estimator = RttEstimator()
    assert estimator.rto == 1.0
    assert estimator.srtt is None and estimator.rttvar is None
    assert estimator.backoff_count == 0 and estimator.sample_count == 0


def test_first_sample_sets_srtt_to_r_and_rttvar_to_half_of_r():
    # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR)
    estimator = RttEstimator()
    estimator.on_sample(0.5)
    assert estimator.srtt == 0.5
    assert estimator.rttvar == 0.25
    assert estimator.rto == pytest.approx(0.5 + 4 * 0.25)  # 1.5
    assert estimator.latest_rtt == 0.5 and estimator.sample_count == 1


def test_later_samples_follow_the_rfc_6298_formulas_with_old_srtt_in_rttvar():
    # RFC 6298 2.3, worked by hand: alpha = 1/8, beta = 1/4.
    estimator = RttEstimator()
    estimator.on_sample(0.4)  # srtt 0.4, rttvar 0.2
    estimator.on_sample(0.8)
    # rttvar = 3/4 * 0.2 + 1/4 * |0.4 - 0.8| = 0.15 + 0.1 = 0.25 (uses the OLD srtt 0.4)
    # srtt   = 7/8 * 0.4 + 1/8 * 0.8 = 0.35 + 0.1 = 0.45
    assert estimator.rttvar == pytest.approx(0.25)
    assert estimator.srtt == pytest.approx(0.45)
    assert estimator.rto == pytest.approx(0.45 + 4 * 0.25)  # 1.45
    estimator.on_sample(0.45)
    # rttvar = 3/4 * 0.25 + 1/4 * 0 = 0.1875; srtt unchanged
    assert estimator.rttvar == pytest.approx(0.1875)
    assert estimator.srtt == pytest.approx(0.45)
    assert estimator.rto == pytest.approx(0.45 + 0.75)


def test_a_small_rtt_is_clamped_to_the_minimum_rto():
    # RFC 6298 2.4 (a lower bound; ours is 0.2 s as in Linux)
    estimator = RttEstimator()
    estimator.on_sample(0.01)  # 0.01 + 4*0.005 = 0.03
    assert estimator.rto == 0.2
    strict = RttEstimator(min_rto=1.0)
    strict.on_sample(0.01)
    assert strict.rto == 1.0


def test_clock_granularity_is_a_floor_for_the_variance_term():
    # RFC 6298 2.3: RTO = SRTT + max(G, K*RTTVAR). After many identical samples RTTVAR -> 0.
    estimator = RttEstimator(min_rto=0.001, clock_granularity=0.1)
    for _ in range(200):
        estimator.on_sample(0.5)
    assert estimator.rttvar < 1e-9
    assert estimator.rto == pytest.approx(0.6)


def test_a_huge_rtt_is_clamped_to_the_maximum_rto():
    # RFC 6298 2.5
    estimator = RttEstimator(max_rto=60.0)
    estimator.on_sample(100.0)
    assert estimator.rto == 60.0
    assert estimator.srtt == 100.0  # the estimate itself is not clamped


def test_initial_rto_is_clamped_too():
    assert RttEstimator(initial_rto=500.0, max_rto=120.0).rto == 120.0
    assert RttEstimator(initial_rto=0.05, min_rto=0.2).rto == 0.2


def test_backoff_doubles_the_rto_up_to_the_maximum():
    # RFC 6298 5.5
    estimator = RttEstimator(initial_rto=1.0, max_rto=10.0)
    seen = []
    for _ in range(6):
        estimator.backoff()
        seen.append(estimator.rto)
    assert seen == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert estimator.backoff_count == 6


def test_a_new_sample_after_backoff_recomputes_the_rto_from_the_estimates():
    # RFC 6298 section 5, note after 5.7: the doubled RTO is kept only until a new measurement.
    estimator = RttEstimator()
    estimator.on_sample(0.5)
    assert estimator.rto == pytest.approx(1.5)
    estimator.backoff()
    estimator.backoff()
    assert estimator.rto == pytest.approx(6.0)
    estimator.on_sample(0.5)
    # rttvar = 3/4 * 0.25 = 0.1875, srtt 0.5 -> rto 1.25, not 6.0 or 12.0
    assert estimator.rto == pytest.approx(0.5 + 4 * 0.1875)
    assert estimator.backoff_count == 0


def test_after_a_syn_timeout_data_starts_with_a_three_second_rto():
    # RFC 6298 5.7
    estimator = RttEstimator()
    estimator.backoff()  # the SYN timed out once: rto 2.0
    estimator.reinitialize_after_syn_timeout()
    assert estimator.rto == 3.0 and estimator.backoff_count == 0
    measured = RttEstimator()
    measured.on_sample(0.1)
    rto = measured.rto
    measured.reinitialize_after_syn_timeout()  # a measurement exists: it wins
    assert measured.rto == rto


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        RttEstimator(min_rto=2.0, max_rto=1.0)
    with pytest.raises(ValueError):
        RttEstimator(initial_rto=0)
    with pytest.raises(ValueError):
        RttEstimator().on_sample(-0.1)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=50))
def test_rto_always_stays_between_the_bounds_and_srtt_within_the_samples(samples):
    estimator = RttEstimator(min_rto=0.2, max_rto=120.0)
    for sample in samples:
        estimator.on_sample(sample)
        assert 0.2 <= estimator.rto <= 120.0
        assert min(samples) - 1e-9 <= estimator.srtt <= max(samples) + 1e-9
        assert estimator.rttvar >= 0
