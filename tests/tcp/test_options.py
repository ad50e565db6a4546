"""Options: MSS (RFC 9293 3.7.1), window scale and timestamps (RFC 7323), SACK (RFC 2018)."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.stack import Stack
from ustack.tcp import Connection, State, TcpConfig

FULL = TcpConfig(mss=1460, receive_buffer_size=1 << 20, send_buffer_size=1 << 20)  # all options on
SHIFT = 5  # 1 MiB needs a shift of 5 to fit a 16-bit field: (1 << 20) >> 5 == 32768


def full_syn_sent(now=0.0):
    connection = Connection.open_active(FULL, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, now)
    script = Script(connection, now)
    script.expect(
        outgoing(
            local(0), 0, SYN, window=0xFFFF,
            options=TcpOptions(mss=1460, window_scale=SHIFT, sack_permitted=True, timestamps=(0, 0)),
        )
    )
    return script


def test_syn_offers_every_enabled_option():
    full_syn_sent()


def test_all_options_negotiated_when_both_offer_them():
    script = full_syn_sent()
    script.now = 0.010
    script.receive(
        incoming(
            remote(0), local(1), SYN | ACK, window=65535,
            options=TcpOptions(mss=1400, window_scale=7, sack_permitted=True, timestamps=(5000, 0)),
        )
    )
    script.expect(outgoing(local(1), remote(1), window=(1 << 20) >> SHIFT, options=TcpOptions(timestamps=(10, 5000))))
    connection = script.connection
    assert (connection.send_shift, connection.receive_shift) == (7, SHIFT)
    assert connection.sack_permitted and connection.timestamps_enabled
    assert connection.send_mss == 1400 - 12  # the peer's MSS, less our timestamp option
    # The SYN-ACK's window is not scaled (RFC 7323 2.2); later windows are.
    assert connection.snd_wnd == 65535
    script.receive(incoming(remote(1), local(1), window=100, options=TcpOptions(timestamps=(5001, 10))))
    assert connection.snd_wnd == 100 << 7


def test_no_scaling_unless_both_sides_offer_it():
    script = full_syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=TcpOptions(mss=1460)))
    # Window field: 1 MiB does not fit 16 bits unscaled, so we advertise the maximum.
    script.expect(outgoing(local(1), remote(1), window=0xFFFF))
    connection = script.connection
    assert (connection.send_shift, connection.receive_shift) == (0, 0)
    assert not connection.sack_permitted and not connection.timestamps_enabled
    assert connection.send_mss == 1460


def test_passive_open_answers_only_the_options_offered():
    connection = Connection.open_passive(FULL, LOCAL_ADDRESS, LOCAL_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1200, sack_permitted=True)))
    script.expect(
        outgoing(local(0), remote(1), SYN | ACK, window=0xFFFF, options=TcpOptions(mss=1460, sack_permitted=True))
    )
    assert connection.send_mss == 1200 and connection.sack_permitted and not connection.timestamps_enabled


def test_missing_mss_option_means_536():
    script = syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1)))
    script.connection.send(bytes(1072), 0.0)
    sent = script.connection.transmit(0.0)
    assert [len(s.payload) for s in sent] == [536, 536]


def test_peer_mss_is_honoured():
    script = syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=700)))
    script.expect(outgoing(local(1), remote(1)))
    script.connection.send(bytes(1500), 0.0)
    assert [len(s.payload) for s in script.connection.transmit(0.0)] == [700, 700]


def test_our_mss_follows_the_configuration():
    config = TcpConfig(**{**CONFIG.__dict__, "mss": 1200})
    script = syn_sent(config)  # the fixture checks the SYN carries mss=1200
    assert script.connection.config.mss == 1200


def established_with_timestamps():
    script = full_syn_sent()
    script.now = 0.010
    script.receive(
        incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460, window_scale=0, sack_permitted=True, timestamps=(5000, 0)))
    )
    script.expect(outgoing(local(1), remote(1), window=(1 << 20) >> SHIFT, options=TcpOptions(timestamps=(10, 5000))))
    return script


def test_timestamps_measure_rtt_from_the_echo():
    script = established_with_timestamps()
    connection = script.connection
    connection.send(b"x", script.now)
    script.expect(
        outgoing(local(1), remote(1), ACK | PSH, window=(1 << 20) >> SHIFT, options=TcpOptions(timestamps=(10, 5000)), payload=b"x")
    )
    script.now = 0.060
    script.receive(incoming(remote(1), local(2), options=TcpOptions(timestamps=(5050, 10))))
    assert connection.rtt.latest_rtt == pytest.approx(0.050)


def test_paws_drops_a_segment_with_an_old_timestamp():
    script = established_with_timestamps()
    script.receive(incoming(remote(1), local(1), payload=b"old", options=TcpOptions(timestamps=(4000, 10))))
    script.expect(outgoing(local(1), remote(1), window=(1 << 20) >> SHIFT, options=TcpOptions(timestamps=(10, 5000))))
    assert script.connection.readable == 0
    assert script.connection.drops["paws_old_timestamp"] == 1
    # a fresh timestamp is accepted and becomes TS.Recent (RFC 7323 4.3)
    script.receive(incoming(remote(1), local(1), payload=b"new", options=TcpOptions(timestamps=(5100, 10))))
    assert script.connection.readable == 3 and script.connection.rcv.ts_recent == 5100


def test_sack_blocks_describe_out_of_order_data_and_peer_blocks_are_recorded():
    script = established_with_timestamps()
    window = (1 << 20) >> SHIFT
    ts = (5001, 10)
    script.receive(incoming(remote(101), local(1), payload=b"b" * 100, options=TcpOptions(timestamps=ts)))
    script.expect(
        outgoing(local(1), remote(1), window=window, options=TcpOptions(sack_blocks=((remote(101), remote(201)),), timestamps=(10, 5000)))
    )
    script.receive(incoming(remote(301), local(1), payload=b"d" * 100, options=TcpOptions(timestamps=ts)))
    script.expect(
        outgoing(
            local(1), remote(1), window=window,
            options=TcpOptions(sack_blocks=((remote(301), remote(401)), (remote(101), remote(201))), timestamps=(10, 5000)),
        )
    )
    connection = script.connection
    connection.send(bytes(3000), script.now)
    connection.transmit(script.now)
    blocks = ((local(1461), local(2921)),)
    script.receive(incoming(remote(1), local(1), options=TcpOptions(sack_blocks=blocks, timestamps=ts)))
    assert connection.snd.peer_sack_blocks == blocks
    assert connection.state is State.ESTABLISHED


def test_mss_from_the_link_mtu():
    assert TcpConfig().fit_to_mtu(1500).mss == 1460
    assert TcpConfig(mss=65495, timestamps=False).fit_to_mtu(9000).mss == 8960
    assert TcpConfig(mss=536).fit_to_mtu(1500).mss == 536  # an MSS set explicitly is never raised


def test_an_mss_nobody_set_follows_the_mtu_up_as_well_as_down():
    # Issue 12: at MTU 65535 the MSS stayed 1460 because fit_to_mtu only lowered it.
    assert TcpConfig().fit_to_mtu(65535).mss == 65495
    assert TcpConfig().fit_to_mtu(9000).fit_to_mtu(1500).mss == 1460  # derived again, not stuck
    assert TcpConfig().fit_to_mtu(576).mss == 536
    # A copy with another setting changed keeps following the MTU; one with mss= set does not.
    assert dataclasses.replace(TcpConfig(), nagle=False).fit_to_mtu(9000).mss == 8960
    assert dataclasses.replace(TcpConfig(), mss=1400).fit_to_mtu(9000).mss == 1400
    assert TcpConfig(mss=1460).fit_to_mtu(9000).mss == 1460  # explicit, even if equal to the default


def test_every_per_socket_configuration_of_a_stack_follows_its_mtu():
    stack = Stack(0x0A000002, mtu=65535)
    assert stack.config.mss == 65495
    assert stack.listen(80, config=TcpConfig(nagle=False)).config.mss == 65495
    assert stack.listen(81, config=TcpConfig(mss=9000)).config.mss == 9000


def test_a_tiny_peer_mss_is_raised_to_a_floor_not_a_traceback():
    # A peer MSS smaller than our timestamp option (here 10) would leave no room for data; a
    # peer may not make us send one header per few bytes either (Linux's tcp_min_snd_mss, 48).
    script = full_syn_sent()
    script.now = 0.010
    script.receive(
        incoming(remote(0), local(1), SYN | ACK, window=65535, options=TcpOptions(mss=10, timestamps=(5000, 0)))
    )
    script.expect(outgoing(local(1), remote(1), window=0xFFFF, options=TcpOptions(timestamps=(10, 5000))))
    connection = script.connection
    assert connection.state is State.ESTABLISHED
    assert connection.send_mss == 48 - 12
    connection.send(bytes(100), script.now)
    # Minshall's Nagle (the default, as Linux): the short tail follows the full segments at once.
    assert [len(s.payload) for s in connection.transmit(script.now)] == [36, 36, 28]


def test_a_tiny_peer_mss_on_a_passive_open_is_raised_to_the_floor():
    connection = Connection.open_passive(FULL, LOCAL_ADDRESS, LOCAL_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, window=0xFFFF, options=TcpOptions(mss=1460)))
    assert connection.state is State.SYN_RECEIVED and connection.send_mss == 48
