"""The labs about moving data: retransmit, zero-window, urgent."""

from __future__ import annotations

import re

import pytest

from ustack.trace import LEFT, RIGHT

from lab_helpers import ratio


def test_retransmit_timeouts_back_off_exponentially(run_lab):
    scene = run_lab("retransmit").scene(0)
    data = [s for s in scene.segments_from("ustack") if s.length]
    assert [s.lost for s in data] == [True, True, True, False]
    assert len({s.seq for s in data}) == 1
    first, second, third = scene.facts["gaps"]
    assert first >= scene.facts["initial_rto"] * 0.95
    assert 1.6 < ratio(second, first) < 2.5 and 1.6 < ratio(third, second) < 2.5
    assert scene.facts["retransmissions"] >= 3
    # RFC 6298 5.5: the first timeout doubled the RTO (read in-process at that moment).
    assert scene.facts["rto_after_first_timeout"] == pytest.approx(2 * scene.facts["initial_rto"])
    # `ustack ss -i`, a separate program, shows a doubled RTO: after the first timeout, or after the
    # second if the machine was slow to start it (it cannot be exact on a shared machine).
    shown = int(re.search(r"rto:(\d+)", scene.text).group(1))
    assert shown in (round(2000 * scene.facts["initial_rto"]), round(4000 * scene.facts["initial_rto"]))


def test_retransmit_fast_after_three_duplicate_acks(run_lab):
    scene = run_lab("retransmit").scene(1)
    ladder = scene.ladder
    lost = [a for a in ladder.arrows if a.kind == "lost"]
    assert len(lost) == 1
    hole = lost[0].seq
    after = ladder.arrows[ladder.arrows.index(lost[0]) + 1:]
    resend = next(a for a in after if a.from_side == LEFT and a.seq == hole and a.length)
    duplicates_before = [a for a in after[:after.index(resend)] if a.from_side == RIGHT and a.ack == hole and not a.length]
    # The first ACK for the hole is the ordinary one; three more are the duplicates.
    assert len(duplicates_before) >= 4
    assert any(a.options.sack_blocks for a in duplicates_before)
    assert scene.facts["fast_retransmit_after"] < scene.facts["rto"]  # not the timer


def test_zero_window_ustack_probes_the_kernel(run_lab):
    scene = run_lab("zero-window").scene(0)
    assert scene.facts["zero_windows"] >= 3
    assert scene.facts["probes"] >= 3
    intervals = scene.facts["probe_intervals"]
    assert all(ratio(later, earlier) > 1.5 for earlier, later in zip(intervals, intervals[1:]))
    assert scene.facts["kernel_received"] == 16 * 1024
    assert "zero-window probe" in scene.ladder_text


def test_zero_window_kernel_probes_ustack(run_lab):
    scene = run_lab("zero-window").scene(1)
    assert scene.facts["zero_windows"] >= 3
    assert scene.facts["probes"] >= 3
    assert scene.facts["ustack_received"] == 16 * 1024
    kernel_ss = [s for s in scene.snapshots if s.side == "kernel"][0]
    assert "persist" in kernel_ss.output  # Linux's zero-window probe timer
    assert "rcv_wnd:0" in [s for s in scene.snapshots if s.side == "ustack"][0].output


def test_urgent_from_the_kernel_is_reported_and_read_inline(run_lab):
    scene = run_lab("urgent").scene(0)
    assert scene.facts["ustack_read"] == "abc!"
    assert scene.facts["urgent_pointers"] == [1]  # just past the single '!'
    assert scene.facts["urgent_marks"]
    assert [s.flags for s in scene.segments_from("kernel") if "U" in s.flags]


def test_urgent_from_ustack_is_read_out_of_band_by_the_kernel(run_lab):
    scene = run_lab("urgent").scene(1)
    assert scene.facts["kernel_oob"] == "!"
    assert scene.facts["kernel_inline"] == "abc"
    assert scene.facts["urgent_pointers"] == [4]
    assert scene.facts["urgent_segments"] == 1
