"""The labs about today's TCP: tail-loss (RTO against a tail loss probe), congestion (Reno, CUBIC)."""

from __future__ import annotations

from ustack.labs.tail_loss import BURST_SEGMENTS, LOST_TAIL, WARM_UP
from ustack.trace import LEFT, RIGHT


def _lost_and_after(scene):
    arrows = scene.ladder.arrows
    lost = [a for a in arrows if a.kind == "lost"]
    return lost, arrows[arrows.index(lost[-1]) + 1:]


def test_tail_loss_both_scenes_lose_the_same_tail_and_deliver_everything(run_lab):
    result = run_lab("tail-loss")
    for scene in result.scenes:
        data = [s for s in scene.segments_from("ustack") if s.length]
        assert [s.length for s in data[:WARM_UP]] == [100] * WARM_UP  # the warm-up writes
        first_copies = data[WARM_UP:WARM_UP + BURST_SEGMENTS]
        # The last LOST_TAIL segments of the burst, and nothing else, were lost.
        assert [s.lost for s in first_copies] == [False] * (BURST_SEGMENTS - LOST_TAIL) + [True] * LOST_TAIL
        assert scene.facts["received"] == scene.facts["burst"]
    assert [scene.facts["loss_detection"] for scene in result.scenes] == ["dupack", "rack"]


def test_tail_loss_dupack_waits_for_the_retransmission_timer(run_lab):
    scene = run_lab("tail-loss").scene(0)
    lost, after = _lost_and_after(scene)
    first_resend = next(a for a in after if a.from_side == LEFT and a.length)
    # RFC 6298 5.4: the timer resends the oldest unacknowledged segment (the first lost one)...
    assert first_resend.seq == lost[0].seq
    # ...no earlier than one RTO after the timer was last restarted (by the ACK of the segments
    # that got through, which came after the lost copies were sent).
    assert scene.facts["first_retransmission_after"] >= scene.facts["rto"] * 0.95
    assert scene.facts["probes_sent"] == 0
    # Nothing came back in between: no ACK from the kernel between the last ordinary ACK and the resend.
    between = after[:after.index(first_resend)]
    assert all(a.from_side == RIGHT and not a.options.sack_blocks for a in between)


def test_tail_loss_rack_probe_repairs_the_tail_before_the_rto(run_lab):
    scene = run_lab("tail-loss").scene(1)
    lost, after = _lost_and_after(scene)
    resends = [a for a in after if a.from_side == LEFT and a.length]
    # RFC 8985 7.3: with nothing new to send, the probe is the last segment sent, again.
    assert resends[0].seq == lost[-1].seq
    assert scene.facts["probes_sent"] == 1
    # The kernel SACKs the probe; RACK then marks the hole lost and resends it (RFC 8985 6).
    sack = next(a for a in after if a.from_side == RIGHT and a.options.sack_blocks)
    assert sack.time > resends[0].time
    assert resends[1].seq == lost[0].seq and resends[1].time >= sack.time
    # The probe comes about two round trips after the burst, well before the RTO would fire,
    # and the whole tail is acknowledged before it too.
    assert scene.facts["first_retransmission_after"] >= 2 * scene.facts["srtt"] * 0.9
    assert scene.facts["first_retransmission_after"] < scene.facts["rto"] * 0.5
    assert scene.facts["repaired_after"] < scene.facts["rto"]


def test_tail_loss_probe_beats_the_timeout_of_the_same_loss(run_lab):
    dupack, rack = run_lab("tail-loss").scenes
    assert rack.facts["repaired_after"] < dupack.facts["first_retransmission_after"]
    assert rack.facts["repaired_after"] * 2 < dupack.facts["repaired_after"]
    text = run_lab("tail-loss").text
    assert "RFC 8985 7" in text and "RFC 6298" in text
    assert "tail loss probe" in text and "retransmission timer" in text


def test_congestion_slow_start_then_one_reduction_then_growth(run_lab):
    for scene in run_lab("congestion").scenes:
        facts = scene.facts
        samples, mss = facts["samples"], facts["mss"]
        assert facts["received"] == facts["sent"]
        assert facts["retransmissions"] >= 1  # the one lost segment
        assert facts["timeouts"] == 0
        before = [(time, cwnd) for time, cwnd, ssthresh in samples if ssthresh >= 1 << 30]
        # Slow start from the initial window of 10 segments (RFC 6928), doubling every round trip
        # (RFC 3465 L = 2 against the kernel's ACKs): 20 after the first one (0.2 s).
        assert before[0][1] == 10 * mss
        after_one_round_trip = max(cwnd for time, cwnd in before if time < 0.3)
        assert after_one_round_trip == 20 * mss
        assert [cwnd for _, cwnd in before] == sorted(cwnd for _, cwnd in before)
        # One reduction for the one loss: ssthresh set once and never changed afterwards.
        assert len({ssthresh for _, _, ssthresh in samples if ssthresh < 1 << 30}) == 1
        assert facts["ssthresh_after"] < facts["cwnd_at_loss"]
        # After the recovery the window grows again, above ssthresh (congestion avoidance).
        assert facts["cwnd_at_end"] > facts["ssthresh_after"]
        assert "cwnd over time" in scene.text


def test_congestion_cubic_backs_off_less_than_reno(run_lab):
    reno, cubic = run_lab("congestion").scenes
    assert (reno.facts["algorithm"], cubic.facts["algorithm"]) == ("reno", "cubic")
    # RFC 5681 3.2: half the flight; RFC 9438 4.6: 0.7 of the flight (the flight is at most cwnd).
    assert reno.facts["beta"] <= 0.55
    assert 0.45 < cubic.facts["beta"] <= 0.75
    assert cubic.facts["beta"] > reno.facts["beta"]


def _growth(samples, start: float, end: float) -> int:
    """cwnd at `end` less cwnd at `start` (the samples hold each change)."""
    def at(moment):
        return [cwnd for time, cwnd, _ in samples if time <= moment][-1]
    return at(end) - at(start)


def test_congestion_plot_is_saved_and_cubic_regrows_concave_then_convex(run_lab):
    import os

    result = run_lab("congestion")
    reno, cubic = result.scenes
    path = cubic.facts["plot"]
    assert os.path.getsize(path) > 10_000  # a drawn PNG, both panels
    assert path in result.text
    os.remove(path)
    # CUBIC (RFC 9438 4.2): back towards W_max fast, flat around it (t = K), faster again beyond.
    samples, w_max = cubic.facts["samples"], cubic.facts["w_max"]
    reduced_at = next(time for time, _, ssthresh in samples if ssthresh < 1 << 30)
    recovered_at = next(time for time, cwnd, ssthresh in samples if time > reduced_at and cwnd <= ssthresh * 1.1)
    reached_at = next(time for time, cwnd, _ in samples if time > recovered_at and cwnd >= 0.97 * w_max)
    end = samples[-1][0]
    assert end > reached_at + 1.5, "the run must go on past W_max to show the convex part"
    first = _growth(samples, recovered_at, recovered_at + 1.0)
    # The flattest second around W_max (a loaded machine shifts the exact moment a little).
    centres = [reached_at - 0.5 + step / 10 for step in range(21)]
    plateau = min(_growth(samples, centre - 0.5, centre + 0.5) for centre in centres if centre + 0.5 <= end - 1.0)
    last = _growth(samples, end - 1.0, end)
    assert plateau < first and plateau < last, (first, plateau, last)
    # Reno (RFC 5681 3.1): a straight line, about one segment per round trip (0.2 s here).
    samples = reno.facts["samples"]
    recovered_at = next(time for time, cwnd, ssthresh in samples if ssthresh < 1 << 30 and cwnd <= ssthresh * 1.1)
    end = samples[-1][0]
    slopes = [_growth(samples, start, start + 2.0) / reno.facts["mss"] for start in (recovered_at, end - 2.0)]
    assert all(7 <= slope <= 13 for slope in slopes), slopes
