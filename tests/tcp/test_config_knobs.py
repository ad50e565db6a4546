"""The knobs a configuration (for example the FreeBSD profile of the conformance runner) can turn
away from ustack's defaults: each test shows the default and the other setting on the wire."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig, TcpError
from ustack.wire.tcp import NO_OPTIONS


def with_knobs(**knobs) -> TcpConfig:
    return dataclasses.replace(CONFIG, **knobs)


def established_with(**knobs) -> Script:
    script = syn_sent(with_knobs(**knobs))
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    return script


# --- RFC 5961 and what came before it ----------------------------------------------------------


def test_insecure_rst_resets_anywhere_in_the_window():
    # Default: a RST in the window but not at RCV.NXT draws a challenge ACK (RFC 5961 3.2).
    script = established()
    script.receive(incoming(remote(100), 0, RST))
    script.expect(outgoing(local(1), remote(1)))
    # rfc5961_rst_check=False: RFC 793's rule, any RST in the window resets.
    script = established_with(rfc5961_rst_check=False)
    script.receive(incoming(remote(100), 0, RST))
    script.expect_nothing()
    assert script.state is State.CLOSED and script.connection.error is TcpError.RESET


def test_insecure_rst_still_ignores_a_reset_outside_the_window():
    script = established_with(rfc5961_rst_check=False)
    script.receive(incoming(remote(BUFFER + 1), 0, RST))
    script.expect_nothing()
    assert script.state is State.ESTABLISHED


def test_insecure_syn_in_the_window_resets_the_connection():
    script = established_with(rfc5961_syn_check=False)
    script.receive(incoming(remote(100), 0, SYN))
    # RFC 793 3.9: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>, and CLOSED with "reset".
    script.expect(outgoing(local(1), remote(1), RST | ACK, window=0))
    assert script.state is State.CLOSED and script.connection.error is TcpError.RESET


def test_insecure_syn_left_of_the_window_is_only_acknowledged():
    # SYN at RCV.NXT - 1 with a FIN after it: the segment reaches into the window, the SYN does not.
    script = established_with(rfc5961_syn_check=False)
    script.receive(incoming(remote(0), 0, SYN | FIN))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED


def test_drop_syn_fin_drops_the_combination_everywhere_but_time_wait():
    # Default: a SYN+FIN in LISTEN is a SYN (RFC 9293 gives the pair no special meaning).
    script = listening()
    script.receive(incoming(remote(0), 0, SYN | FIN, options=TcpOptions(mss=1460)))
    assert script.state is State.SYN_RECEIVED
    script = listening(with_knobs(drop_syn_fin=True))
    script.receive(incoming(remote(0), 0, SYN | FIN, options=TcpOptions(mss=1460)))
    script.expect_nothing()
    assert script.state is State.LISTEN
    assert script.connection.drops["syn_and_fin"] == 1


def test_rfc1337_ignores_even_an_exact_reset_in_time_wait_without_a_challenge():
    script = time_wait()
    script.connection.time_wait.config = with_knobs(rfc1337=True)  # TIME-WAIT is the record's (time_wait.py)
    script.receive(incoming(remote(5), 0, RST))  # in the window, not exact: no challenge ACK either
    script.receive(incoming(remote(2), 0, RST))
    script.expect_nothing()
    assert script.state is State.TIME_WAIT


def test_a_reset_in_last_ack_is_reported_to_the_application():
    script = last_ack()
    script.receive(incoming(remote(2), 0, RST))
    assert script.state is State.CLOSED and script.connection.error is TcpError.RESET


# --- the SYN and its options -------------------------------------------------------------------


def test_window_scale_shift_is_offered_as_configured():
    config = TcpConfig(receive_buffer_size=65536, window_scale_shift=6)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    (syn,) = connection.transmit(0.0)
    assert syn.options.window_scale == 6
    default = Connection.open_active(TcpConfig(receive_buffer_size=65536), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS,
                                     REMOTE_PORT, LOCAL_ISS, 0.0)
    assert default.transmit(0.0)[0].options.window_scale == 1  # what 64 KiB needs
    with pytest.raises(ValueError):
        TcpConfig(window_scale_shift=15)


def test_no_options_sends_a_bare_syn_and_negotiates_nothing():
    config = TcpConfig(no_options=True)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    (syn,) = connection.transmit(0.0)
    assert syn.options == NO_OPTIONS
    full = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamps=(5, 0))
    connection.receive(incoming(remote(0), local(1), SYN | ACK, options=full), 0.1)
    assert connection.state is State.ESTABLISHED
    assert not (connection.window_scaling_enabled or connection.sack_permitted or connection.timestamps_enabled)
    assert connection.send_mss == 1460  # the peer's MSS still counts


def test_syn_retransmissions_drop_their_options_from_the_configured_one_on():
    config = TcpConfig(syn_retries_with_options=2)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    offered = []
    now = 0.0
    for _ in range(4):
        (syn,) = connection.transmit(now)
        offered.append(syn.options.window_scale is not None and syn.options.sack_permitted)
        assert syn.options.mss == 1460
        now = connection.next_deadline()
        connection.on_timer(now)
    assert offered == [True, True, False, False]
    # A SYN-ACK with options now negotiates none: our last SYN did not offer them.
    full = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamps=(5, 0))
    connection.receive(incoming(remote(0), local(1), SYN | ACK, options=full), now)
    assert not (connection.window_scaling_enabled or connection.sack_permitted or connection.timestamps_enabled)


def test_missing_timestamps_are_tolerated_by_default_and_dropped_on_request():
    full = TcpOptions(mss=1460, timestamps=(5, 0))
    for tolerate in (True, False):
        config = TcpConfig(window_scaling=False, sack=False, tolerate_missing_timestamps=tolerate)
        connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
        connection.transmit(0.0)
        connection.receive(incoming(remote(0), local(1), SYN | ACK, options=full), 0.1)
        connection.transmit(0.1)
        connection.receive(incoming(remote(1), local(1), ACK | PSH, payload=b"hello"), 0.2)  # no timestamp
        assert connection.readable == (5 if tolerate else 0)
        assert connection.drops["missing_timestamp"] == (0 if tolerate else 1)


# --- timers ------------------------------------------------------------------------------------


def test_connect_timeout_gives_up_an_open_attempt():
    script = syn_sent(with_knobs(connect_timeout=2.5))
    assert script.advance_to_next_timer() == 1.0
    script.expect(outgoing(LOCAL_ISS, 0, SYN, window=BUFFER, options=TcpOptions(mss=1460)))
    assert script.advance_to_next_timer() == 2.5
    script.expect_nothing()
    assert script.state is State.CLOSED and script.connection.error is TcpError.TIMED_OUT


def test_connect_timeout_stops_once_established():
    script = established_with(connect_timeout=2.5)
    assert script.connection.timers_armed() == {}


def test_rto_slop_comes_on_top_of_the_doubled_rto():
    # BSD's SYN timer: 1 s, then 2 * 1 s + 0.2 s, then 4 * 1 s + 0.2 s.
    script = syn_sent(with_knobs(rto_slop=0.2))
    syn = outgoing(LOCAL_ISS, 0, SYN, window=BUFFER, options=TcpOptions(mss=1460))
    times = []
    for _ in range(3):
        times.append(script.advance_to_next_timer())
        script.expect(syn)
    assert times == [1.0, 3.2, 7.4]


# --- simultaneous open with data on the SYN ----------------------------------------------------


def test_data_on_a_simultaneous_syn_waits_for_established():
    script = syn_sent()
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460), payload=b"abc"))
    # RFC 9293 3.10.7.3: the text is queued, not acknowledged yet.
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    assert script.connection.readable == 0
    script.receive(incoming(remote(4), local(1)))
    assert script.state is State.ESTABLISHED
    assert script.connection.recv(100, script.now) == b"abc"
    assert script.connection.rcv_nxt == remote(4)


# --- settings changed on an open connection (socket options after connect) ----------------------


def test_nagle_can_be_switched_off_on_an_open_connection():
    script = established()
    script.connection.send(b"a" * 100, script.now)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a" * 100))
    script.connection.send(b"b" * 100, script.now)
    script.expect_nothing()  # Nagle: 100 bytes unacknowledged
    script.connection.reconfigure(script.now, nagle=False)
    script.expect(outgoing(local(101), remote(1), ACK | PSH, payload=b"b" * 100))
    assert CONFIG.nagle  # the shared configuration is untouched


def test_keepalive_switched_on_later_starts_the_idle_period_then():
    script = established()
    script.now = 5.0
    script.connection.reconfigure(script.now, keepalive=True, keepalive_idle=100.0)
    assert script.connection.timers_armed() == {"keepalive": 105.0}
    script.connection.reconfigure(script.now, keepalive=False)
    assert script.connection.timers_armed() == {}


def test_the_send_buffer_can_grow_and_shrink_on_an_open_connection():
    # SO_SNDBUF after connect: send() queues up to the new size from then on; data already
    # queued beyond a smaller size stays and is sent.
    script = established_with(send_buffer_size=1000, nagle=False)
    connection = script.connection
    assert connection.send(b"a" * 3000, script.now) == 1000
    connection.reconfigure(script.now, send_buffer_size=4000)
    assert connection.send(b"b" * 5000, script.now) == 3000
    connection.reconfigure(script.now, send_buffer_size=500)
    assert connection.send(b"c" * 100, script.now) == 0
    assert connection.snd.queued == 4000


def test_settings_that_shape_the_syn_cannot_change_on_an_open_connection():
    script = established()
    with pytest.raises(ValueError, match="mss"):
        script.connection.reconfigure(script.now, mss=500)


def test_a_send_buffer_beyond_what_sequence_numbers_can_tell_apart_is_refused():
    # Unsent data is measured as END - SND.NXT modulo 2**32 (seq_diff): with 2**31 bytes or
    # more queued it would read as negative, and nothing would be sent. Refused up front, with
    # the same 2**30 bound as the receive buffer.
    with pytest.raises(ValueError, match="send_buffer_size"):
        TcpConfig(send_buffer_size=3 << 30)
    assert TcpConfig(send_buffer_size=1 << 30).send_buffer_size == 1 << 30
