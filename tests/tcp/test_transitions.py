"""Every arrow of the transition table (RFC 9293 Figure 5, its notes, and the resets, aborts and
timeouts the figure leaves out) is exercised by a named test, and the table and the tests cannot
drift apart: each named test is run here with the state setter watched, and must take its arrow."""

from __future__ import annotations

import importlib

import pytest

import ustack.tcp.state as state_module
from ustack.tcp.state import (
    AFTER_ACK_OF_FIN,
    AFTER_CLOSE,
    AFTER_FIN,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIGURE_5,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
)

ARROW_TESTS = {
    # Figure 5
    (CLOSED, LISTEN): "test_listen::test_passive_open_enters_listen",
    (CLOSED, SYN_SENT): "test_syn_sent::test_active_open_sends_syn",
    (LISTEN, CLOSED): "test_listen::test_close_in_listen_deletes_the_tcb",
    (LISTEN, SYN_RECEIVED): "test_listen::test_rcv_syn_sends_syn_ack_and_enters_syn_received",
    (LISTEN, SYN_SENT): "test_listen::test_send_in_listen_turns_into_an_active_open",
    (SYN_SENT, CLOSED): "test_syn_sent::test_close_in_syn_sent_deletes_the_tcb",
    (SYN_SENT, SYN_RECEIVED): "test_syn_sent::test_simultaneous_open_goes_through_syn_received",
    (SYN_SENT, ESTABLISHED): "test_syn_sent::test_syn_ack_establishes_and_is_acknowledged",
    (SYN_RECEIVED, LISTEN): "test_syn_received::test_rst_after_passive_open_returns_to_listen",
    (SYN_RECEIVED, ESTABLISHED): "test_syn_received::test_ack_of_syn_establishes",
    (SYN_RECEIVED, FIN_WAIT_1): "test_syn_received::test_close_in_syn_received_sends_fin_after_the_ack_of_syn",
    (ESTABLISHED, FIN_WAIT_1): "test_established::test_close_sends_fin_and_enters_fin_wait_1",
    (ESTABLISHED, CLOSE_WAIT): "test_established::test_rcv_fin_enters_close_wait_and_signals_end_of_stream",
    (FIN_WAIT_1, FIN_WAIT_2): "test_fin_wait::test_ack_of_fin_enters_fin_wait_2",
    (FIN_WAIT_1, CLOSING): "test_fin_wait::test_fin_before_the_ack_of_ours_enters_closing",
    (FIN_WAIT_1, TIME_WAIT): "test_fin_wait::test_fin_with_the_ack_of_ours_goes_straight_to_time_wait",
    (FIN_WAIT_2, TIME_WAIT): "test_fin_wait::test_fin_in_fin_wait_2_enters_time_wait",
    (CLOSE_WAIT, LAST_ACK): "test_close_wait::test_close_in_close_wait_sends_fin_and_enters_last_ack",
    (CLOSING, TIME_WAIT): "test_closing::test_ack_of_fin_in_closing_enters_time_wait",
    (LAST_ACK, CLOSED): "test_close_wait::test_ack_of_fin_in_last_ack_closes",
    (TIME_WAIT, CLOSED): "test_time_wait::test_time_wait_lasts_two_msl_then_closes",
    # Left out of the figure (note 3): resets, aborts, timeouts
    (SYN_RECEIVED, CLOSED): "test_syn_received::test_rst_after_simultaneous_open_is_refused",
    (ESTABLISHED, CLOSED): "test_reset::test_reset_at_rcv_nxt_resets_the_connection",
    (FIN_WAIT_1, CLOSED): "test_fin_wait::test_reset_in_fin_wait_1_and_fin_wait_2_is_reported",
    (FIN_WAIT_2, CLOSED): "test_fin_wait::test_data_after_a_full_close_is_answered_with_a_reset",
    (CLOSE_WAIT, CLOSED): "test_close_wait::test_reset_in_close_wait_and_last_ack",
    (CLOSING, CLOSED): "test_closing::test_reset_in_closing_closes",
}

# Causes outside the figure that share a key with a figure arrow, each with its own test too.
MORE_CAUSES = {
    (SYN_SENT, CLOSED): [
        "test_syn_sent::test_rst_with_acceptable_ack_means_refused",
        "test_syn_sent::test_syn_is_retransmitted_with_backoff_then_the_open_times_out",
    ],
    (LAST_ACK, CLOSED): ["test_close_wait::test_fin_in_last_ack_is_retransmitted_and_gives_up_eventually"],
    (TIME_WAIT, CLOSED): ["test_time_wait::test_reset_in_time_wait_closes_by_default"],
    (ESTABLISHED, CLOSED): [
        "test_established::test_abort_sends_a_reset_and_reports_aborted",
        "test_established::test_close_with_unread_data_sends_a_reset",
        "test_retransmit::test_retransmissions_exhausted_report_timed_out",
    ],
}


def test_every_arrow_of_figure_5_is_in_the_table():
    assert set(FIGURE_5) <= set(TRANSITIONS)


def test_every_arrow_in_the_table_has_a_named_test():
    assert set(ARROW_TESTS) == set(TRANSITIONS)


def run_watching_transitions(name, monkeypatch):
    seen = []

    setter = state_module.StateMachine._set_state

    def watching(machine, new, cause):
        old = machine.state
        setter(machine, new, cause)
        seen.append((old, new))

    monkeypatch.setattr(state_module.StateMachine, "_set_state", watching)
    module_name, function_name = name.split("::")
    getattr(importlib.import_module(module_name), function_name)()
    return seen


@pytest.mark.parametrize(
    "arrow, name",
    list(ARROW_TESTS.items()) + [(arrow, name) for arrow, names in MORE_CAUSES.items() for name in names],
    ids=lambda value: value.split("::")[1] if isinstance(value, str) else f"{value[0].value}->{value[1].value}",
)
def test_named_test_takes_its_arrow(arrow, name, monkeypatch):
    assert arrow in run_watching_transitions(name, monkeypatch), f"{name} never goes {arrow[0].value} -> {arrow[1].value}"


def test_a_transition_outside_the_table_is_refused():
    with pytest.raises(IllegalTransition):
        check_transition(ESTABLISHED, LISTEN)
    with pytest.raises(IllegalTransition):
        check_transition(TIME_WAIT, ESTABLISHED)


def test_set_state_refuses_an_illegal_change_and_leaves_the_state_alone():
    from tcp_script import established

    script = established()
    with pytest.raises(IllegalTransition):
        script.connection._set_state(SYN_SENT, "a bug")
    assert script.connection.state is ESTABLISHED


def test_every_state_change_names_its_cause():
    from tcp_script import local, remote, time_wait

    script = time_wait()
    causes = [(e.new.value, e.cause) for e in script.connection.events() if hasattr(e, "cause")]
    assert causes == [
        ("SYN-SENT", "active OPEN"),
        ("ESTABLISHED", f"Flags [S.], seq {remote(0)}, ack {local(1)}, win 8192, length 0"),
        ("FIN-WAIT-1", "CLOSE"),
        ("FIN-WAIT-2", f"Flags [.], seq {remote(1)}, ack {local(2)}, win 8192, length 0"),
        ("TIME-WAIT", f"Flags [F.], seq {remote(1)}, ack {local(2)}, win 8192, length 0"),
    ]
    script.advance_to_next_timer()
    assert script.connection.events()[-1].cause == "TIME-WAIT timer (2*MSL)"


def test_the_closing_tables_name_only_arrows_of_the_table():
    """state.AFTER_CLOSE / AFTER_FIN / AFTER_ACK_OF_FIN drive the code; each entry must be an
    arrow the table allows, named in Figure 5 itself."""
    for table in (AFTER_CLOSE, AFTER_FIN, AFTER_ACK_OF_FIN):
        for old, new in table.items():
            assert (old, new) in FIGURE_5, f"{old.value} -> {new.value}"


def test_connections_and_listeners_share_one_state_setter():
    from ustack.tcp import Connection, Listener
    from ustack.tcp.state import StateMachine

    assert Connection._set_state is StateMachine._set_state
    assert Listener._set_state is StateMachine._set_state
