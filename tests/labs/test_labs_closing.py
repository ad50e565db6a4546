"""The labs about closing connections: time-wait, simultaneous-close, half-close, reset."""

from __future__ import annotations

from ustack.tcp.seq import seq_add
from ustack.tcp.state import State
from ustack.trace import LEFT, RIGHT
from ustack.wire.tcp import FIN

from lab_helpers import in_order, state_when_sent


def test_time_wait_answers_the_retransmitted_fin_and_restarts(run_lab):
    scene = run_lab("time-wait").scene(0)
    ladder = scene.ladder
    kernel_fins = [a for a in ladder.arrows if a.from_side == RIGHT and a.flags & FIN]
    assert len(kernel_fins) == 2 and kernel_fins[1].kind == "retransmission"
    retransmitted = kernel_fins[1]
    answers = [a for a in ladder.arrows if a.from_side == LEFT and a.time >= kernel_fins[0].time
               and a.ack == seq_add(retransmitted.seq, 1)]
    assert [a.kind for a in answers] == ["lost", "normal"]  # the last ACK lost, then sent again
    assert state_when_sent(ladder, answers[1]) is State.TIME_WAIT  # answered in TIME-WAIT
    assert answers[1].time >= retransmitted.time
    assert scene.ustack_states.count("TIME-WAIT") == 1 and scene.ustack_states[-1] == "CLOSED"
    assert scene.facts["time_wait_restarted_by"] > 0.1  # the timer moved when the FIN came again
    assert scene.facts["time_in_time_wait"] >= 2.0 + scene.facts["time_wait_restarted_by"] - 0.05
    assert "LAST-ACK" in scene.kernel_ss_states and "TIME-WAIT" in scene.ustack_ss_states


def test_time_wait_without_it_the_fin_meets_a_reset(run_lab):
    scene = run_lab("time-wait").scene(1)
    resets = scene.segments_from("ustack", "R")
    assert len(resets) == 1
    fin_again = [s for s in scene.segments_from("kernel") if "F" in s.flags][-1]
    assert fin_again.retransmission and resets[0].time >= fin_again.time
    assert scene.kernel_ss_states[0] == "LAST-ACK"


def test_simultaneous_close_shows_closing_on_both_sides(run_lab):
    scene = run_lab("simultaneous-close").scene(0)
    assert in_order(["ESTABLISHED", "FIN-WAIT-1", "CLOSING", "TIME-WAIT", "CLOSED"], scene.ustack_states)
    assert in_order(["CLOSING", "TIME-WAIT"], scene.kernel_ss_states)  # the kernel's own word
    assert "CLOSING" in scene.kernel_states  # and inferred from the segments
    assert in_order(["FIN-WAIT-1", "CLOSING"], scene.ustack_ss_states)
    ustack_fin = scene.segments_from("ustack", "F.")[0]
    kernel_fin = scene.segments_from("kernel", "F.")[0]
    # The FINs crossed: neither acknowledges the other.
    assert kernel_fin.ack == ustack_fin.seq and ustack_fin.ack == kernel_fin.seq
    assert not [s for s in scene.segments if s.retransmission]


def test_half_close_kernel_reads_in_fin_wait_2_while_ustack_sends_in_close_wait(run_lab):
    scene = run_lab("half-close").scene(0)
    assert in_order(["ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"], scene.ustack_states)
    assert "FIN-WAIT-2" in scene.kernel_ss_states and "CLOSE-WAIT" in scene.ustack_ss_states
    assert "FIN-WAIT-2" in scene.kernel_states
    assert scene.facts["data_after_fin"] == 3000 == scene.facts["kernel_received"]


def test_half_close_ustack_reads_in_fin_wait_2_while_kernel_sends_in_close_wait(run_lab):
    scene = run_lab("half-close").scene(1)
    assert in_order(["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"], scene.ustack_states)
    assert "CLOSE-WAIT" in scene.kernel_ss_states and "FIN-WAIT-2" in scene.ustack_ss_states
    assert scene.facts["data_after_fin"] == 3000 == scene.facts["ustack_received"]


def test_reset_to_a_port_without_listener_refuses_curl(run_lab):
    scene = run_lab("reset").scene(0)
    syn = scene.segments_from("kernel", "S")[0]
    reset = scene.segments_from("ustack", "R.")[0]
    assert reset.seq == 0 and reset.ack == seq_add(syn.seq, 1)
    assert scene.facts["curl_status"] == 7  # curl: could not connect
    assert "CLOSED" == scene.kernel_states[-1]


def test_reset_from_aborts_in_both_directions(run_lab):
    result = run_lab("reset")
    ustack_aborts, kernel_aborts = result.scene(1), result.scene(2)
    assert ustack_aborts.facts["kernel_error"] == "ECONNRESET"
    assert len(ustack_aborts.segments_from("ustack", "R")) == 1
    assert ustack_aborts.ustack_states[-2:] == ["ESTABLISHED", "CLOSED"]
    assert kernel_aborts.segments_from("kernel")[-1].flags.startswith("R")
    assert kernel_aborts.ustack_states[-1] == "CLOSED"
    assert "ConnectionResetError" in kernel_aborts.facts["ustack_read"]


def test_reset_for_the_stale_connection_after_a_restart(run_lab):
    scene = run_lab("reset").scene(3)
    assert scene.kernel_ss_states[:1] == ["ESTAB"]  # the kernel did not know
    assert scene.facts["kernel_error"] == "ECONNRESET"
    assert scene.facts["kernel_error_text"] == "Connection reset by peer"
    data = [s for s in scene.segments_from("kernel") if s.length]
    reset = scene.segments_from("ustack", "R")
    assert data and reset and reset[0].seq == data[-1].ack
    assert scene.ustack_states[-1] == "ESTABLISHED"  # the old stack never closed it: it crashed


def test_half_close_with_netcat_the_answer_comes_after_its_fin(run_lab):
    scene = run_lab("half-close").scene(2)
    assert scene.facts["netcat_status"] == 0
    assert scene.facts["netcat_output"] == "HALF-CLOSE ME, PLEASE\n"
    assert scene.facts["data_after_fin"] == len("HALF-CLOSE ME, PLEASE\n")
    assert scene.kernel_ss_states == ["FIN-WAIT-2"]
    assert in_order(["ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"], scene.ustack_states)
