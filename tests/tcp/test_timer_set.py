"""TimerSet's own verbs (timer_set.py), beside what the connection does with them."""

from __future__ import annotations

from ustack.tcp.timer_set import Timer, TimerSet


def test_cancel_loss_timers_stops_exactly_retransmission_tlp_and_reorder():
    # As cancel() of each of the three: every other timer keeps its deadline.
    timers = TimerSet()
    timers.cancel_loss_timers()  # nothing armed: nothing to do, no list made
    assert timers.deadlines is None
    for kind in Timer:
        timers.arm(kind, 10.0 + kind)
    timers.cancel_loss_timers()
    stopped = {Timer.RETRANSMIT, Timer.TLP, Timer.REORDER}
    assert timers.armed() == {kind.label: 10.0 + kind for kind in Timer if kind not in stopped}
    assert timers.next_deadline() == 10.0 + Timer.DELAYED_ACK
