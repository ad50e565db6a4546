"""ECN (RFC 3168) in the connection: negotiation on the SYNs, ECT(0) marking, CE -> ECE -> CWR,
and one reduction of cwnd per window of data."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection
from ustack.tcp.ecn import EcnCapableSegment
from ustack.wire.tcp import CWR, ECE

MSS = 1460
PEER_WINDOW_WIDE = 60000
DATA = (bytes(range(256)) * 200)[: 20 * MSS]


def config(**changes):
    return dataclasses.replace(CONFIG, initial_window_segments=4, send_buffer_size=65536, **changes)


def active(ecn: str = "on", syn_ack_flags: int = SYN | ACK | ECE) -> Script:
    connection = Connection.open_active(config(ecn=ecn), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    asks = ECE | CWR if ecn == "on" else 0
    script.expect(outgoing(local(0), 0, SYN | asks, options=TcpOptions(mss=MSS)))
    script.receive(incoming(remote(0), local(1), syn_ack_flags, window=PEER_WINDOW_WIDE, options=TcpOptions(mss=MSS)))
    script.expect(outgoing(local(1), remote(1)))
    return script


def passive(ecn: str, syn_flags: int) -> Script:
    script = listening(config(ecn=ecn))
    script.receive(incoming(remote(0), 0, syn_flags, options=TcpOptions(mss=MSS)))
    return script


def data_segment(n: int, flags: int = ACK) -> TcpSegment:
    start = n * MSS
    return outgoing(local(1 + start), remote(1), flags, payload=DATA[start : start + MSS])


def ack(segments: int, flags: int = ACK) -> TcpSegment:
    return incoming(remote(1), local(1 + segments * MSS), flags, window=PEER_WINDOW_WIDE)


# ---------------------------------------------------------------------- negotiation (6.1.1)
def test_an_active_open_asks_with_ece_and_cwr_and_a_syn_ack_with_ece_agrees():
    script = active("on")
    assert script.connection.ecn is not None


def test_a_syn_ack_without_ece_leaves_ecn_off():
    script = active("on", syn_ack_flags=SYN | ACK)
    assert script.connection.ecn is None


def test_a_syn_ack_with_ece_and_cwr_is_not_an_agreement():
    # RFC 3168 6.1.1: a SYN-ACK with both set is from a broken peer reflecting the flags.
    script = active("on", syn_ack_flags=SYN | ACK | ECE | CWR)
    assert script.connection.ecn is None


@pytest.mark.parametrize("ecn", ["passive", "off"])
def test_without_ecn_on_the_syn_asks_for_nothing_and_an_ece_on_the_syn_ack_is_ignored(ecn):
    script = active(ecn)
    assert script.connection.ecn is None


@pytest.mark.parametrize("ecn, agrees", [("passive", True), ("on", True), ("off", False)])
def test_a_passive_open_agrees_with_ece_alone_unless_off(ecn, agrees):
    script = passive(ecn, SYN | ECE | CWR)
    flags = SYN | ACK | ECE if agrees else SYN | ACK
    script.expect(outgoing(local(0), remote(1), flags, window=BUFFER, options=TcpOptions(mss=MSS)))
    assert (script.connection.ecn is not None) is agrees


def test_a_syn_with_ece_but_not_cwr_is_no_request():
    script = passive("passive", SYN | ECE)
    script.expect(outgoing(local(0), remote(1), SYN | ACK, window=BUFFER, options=TcpOptions(mss=MSS)))
    assert script.connection.ecn is None


def test_a_retransmitted_syn_no_longer_asks():
    connection = Connection.open_active(config(ecn="on"), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN | ECE | CWR, options=TcpOptions(mss=MSS)))
    script.advance_to_next_timer()
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=MSS)))
    # A late SYN-ACK agreeing to the first SYN is not taken: ours no longer asks.
    script.receive(incoming(remote(0), local(1), SYN | ACK | ECE, window=PEER_WINDOW_WIDE, options=TcpOptions(mss=MSS)))
    assert connection.ecn is None


# ---------------------------------------------------------------------- marking (6.1.2, 6.1.4, 6.1.5)
def test_new_data_is_ect_but_pure_acks_and_retransmissions_are_not():
    script = active("on")
    connection = script.connection
    connection.send(DATA[: 2 * MSS], script.now)
    sent = connection.transmit(script.now)
    assert sent == [data_segment(0), data_segment(1, ACK | PSH)]
    assert all(type(segment) is EcnCapableSegment for segment in sent)
    script.advance_to_next_timer()  # RTO: segment 0 again
    (again,) = connection.transmit(script.now)
    assert again == data_segment(0) and type(again) is not EcnCapableSegment
    connection.receive(incoming(remote(1), local(1 + 2 * MSS), ACK | PSH, window=PEER_WINDOW_WIDE, payload=b"x"), script.now)
    script.advance_to_next_timer()  # the delayed ACK
    (pure_ack,) = connection.transmit(script.now)
    assert not pure_ack.payload and type(pure_ack) is not EcnCapableSegment


def test_without_ecn_nothing_is_marked():
    script = active("on", syn_ack_flags=SYN | ACK)
    script.connection.send(DATA[:MSS], script.now)
    assert all(type(segment) is not EcnCapableSegment for segment in script.connection.transmit(script.now))


# ---------------------------------------------------------------------- receiver: CE -> ECE until CWR (6.1.3)
def test_ce_is_echoed_on_every_ack_until_cwr():
    script = active("on")
    connection = script.connection
    connection.congestion_experienced()  # the host saw CE on the next packet
    script.receive(incoming(remote(1), local(1), ACK, payload=b"a"))
    # Acknowledged at once, with ECE.
    assert [(s.ack, s.flags) for s in connection.transmit(script.now)] == [(remote(2), ACK | ECE)]
    script.receive(incoming(remote(2), local(1), ACK, payload=b"b"))
    script.advance_to_next_timer()
    assert [(s.ack, s.flags) for s in connection.transmit(script.now)] == [(remote(3), ACK | ECE)]  # until CWR
    script.receive(incoming(remote(3), local(1), ACK | CWR, payload=b"c"))
    script.advance_to_next_timer()
    assert [(s.ack, s.flags) for s in connection.transmit(script.now)] == [(remote(4), ACK)]
    assert connection.ecn.ce_received == 1


# ---------------------------------------------------------------------- sender: ECE -> reduce once, CWR (6.1.2)
def test_ece_reduces_cwnd_once_per_window_and_the_next_new_data_carries_cwr():
    script = active("on")
    connection = script.connection
    connection.send(DATA, script.now)
    script.expect(*[data_segment(n) for n in range(4)])  # initial window: 4 segments
    cwnd = connection.congestion.cwnd
    script.advance(0.1)
    script.receive(ack(1, ACK | ECE))
    # Halved from the flight of 4 segments, as a loss would: ssthresh = cwnd = 2 segments;
    # nothing is retransmitted; the next new segment carries CWR.
    assert connection.congestion.ssthresh == 2 * MSS
    assert connection.congestion.cwnd == 2 * MSS < cwnd
    assert not connection.congestion.in_recovery
    assert connection.retransmissions == 0
    assert connection.ecn.reductions == 1
    # 3 segments in flight > cwnd 2: nothing yet.
    script.expect_nothing()
    script.receive(ack(3, ACK | ECE))  # ECE again, for data of the same window: no second cut
    assert connection.congestion.cwnd >= 2 * MSS and connection.ecn.reductions == 1
    sent = connection.transmit(script.now)
    assert sent[0] == data_segment(4, ACK | CWR)
    assert all(not segment.flags & CWR for segment in sent[1:])
    # An ECE for data sent after the reduction is a new signal.
    script.advance(0.1)
    end = 4 + len(sent)
    script.receive(ack(end, ACK | ECE))
    assert connection.ecn.reductions == 2


def test_an_ece_during_loss_recovery_is_not_a_second_reduction():
    script = active("on")
    connection = script.connection
    connection.send(DATA, script.now)
    script.expect(*[data_segment(n) for n in range(4)])
    for _ in range(3):
        script.receive(ack(0))  # three duplicate ACKs: fast recovery
    assert connection.congestion.in_recovery
    ssthresh = connection.congestion.ssthresh
    script.receive(ack(0, ACK | ECE))
    assert connection.congestion.ssthresh == ssthresh
    assert connection.ecn.reductions == 0


def test_an_unknown_ecn_mode_is_refused():
    with pytest.raises(ValueError, match="ecn"):
        config(ecn="yes")


def test_the_snapshot_and_ss_i_show_ecn_when_negotiated():
    from ustack.commands.ss import info_text
    from ustack.control import to_jsonable

    with_ecn = active("on").connection.snapshot()
    without = active("on", syn_ack_flags=SYN | ACK).connection.snapshot()
    assert with_ecn.ecn and not without.ecn
    assert info_text(to_jsonable(with_ecn), 0.0).split()[0] == "ecn"
    assert "ecn" not in info_text(to_jsonable(without), 0.0).split()


def test_ecn_syn_retries_keeps_asking_on_that_many_retransmissions():
    connection = Connection.open_active(config(ecn="on", ecn_syn_retries=1), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS,
                                        REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    flags = []
    for _ in range(3):
        (syn,) = connection.transmit(script.now)
        flags.append(syn.flags)
        script.advance_to_next_timer()
    assert flags == [SYN | ECE | CWR, SYN | ECE | CWR, SYN]


def test_in_a_simultaneous_open_a_syn_asking_for_ecn_is_agreed_to():
    # snippets/syn-rcvd-via-syn-sent-ipv4-ecn01 of the FreeBSD suite: our SYN did not ask, the
    # peer's SYN (no ACK: it crossed ours) does; our SYN-ACK agrees and our data is ECT(0).
    connection = Connection.open_active(config(ecn="passive"), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT,
                                        LOCAL_ISS, 0.0)
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=MSS)))
    script.receive(incoming(remote(0), 0, SYN | ECE | CWR, window=PEER_WINDOW_WIDE, options=TcpOptions(mss=MSS)))
    (syn_ack,) = connection.transmit(script.now)
    assert syn_ack.flags == SYN | ACK | ECE
    assert connection.ecn is not None
