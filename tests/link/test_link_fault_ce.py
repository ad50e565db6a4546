"""FaultInjector's `ce` fault: Congestion Experienced on ECN-capable packets (RFC 3168 5)."""

from __future__ import annotations

import pytest

from ustack.link import FaultInjector, Faults
from ustack.wire import TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK

from link_helpers import ScriptedLink
from test_link_fault import internet_checksum_ok

SEED = 20261206
SOURCE, DESTINATION = 0x0A000001, 0x0A000002


def packets(count: int, tos: int) -> list[bytes]:
    return [build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, n, 0, ACK, 100, payload=b"data"), tos=tos) for n in range(count)]


def run(faults: Faults, sent: list[bytes]) -> tuple[FaultInjector, list[bytes]]:
    device = ScriptedLink()
    injector = FaultInjector(device, seed=SEED, outbound=faults)
    for packet in sent:
        injector.send(packet, 0.0)
    return injector, device.sent


def test_ce_marks_about_the_given_share_of_ect_packets_and_keeps_the_header_checksum_valid():
    print(f"seed {SEED}")
    injector, out = run(Faults(ce=0.25), packets(2000, tos=0x02))  # ECT(0)
    marked = [packet for packet in out if parse_packet(packet).ip.tos & 3 == 3]
    assert injector.counters["ce_marked_outbound"] == len(marked)
    assert 400 < len(marked) < 600
    assert len(out) == 2000  # marked, not dropped
    for packet in marked:
        assert internet_checksum_ok(packet[:20])
        assert parse_packet(packet).ip.tos == 0x03  # parse_packet checks the header checksum too


def test_packets_that_are_not_ecn_capable_are_never_marked():
    sent = packets(500, tos=0x00)
    injector, out = run(Faults(ce=1.0), sent)
    assert out == sent
    assert injector.counters["ce_marked_outbound"] == 0


def test_ce_is_a_probability():
    with pytest.raises(ValueError, match="ce"):
        Faults(ce=1.5)


def test_serve_and_connect_take_a_ce_flag():
    from ustack import cli
    from ustack.commands.faults import describe_faults, faults_from_args

    args = cli.build_parser().parse_args(["serve", "--ce", "in:0.02,out:0.01"])
    inbound, outbound = faults_from_args(args)
    assert (inbound, outbound) == (Faults(ce=0.02), Faults(ce=0.01))
    assert describe_faults(inbound, outbound) == "in: ce 0.02; out: ce 0.01"
