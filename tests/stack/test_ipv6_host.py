"""One host with IPv4 and IPv6 (issue 11, "Stack"), on virtual time: the two families share the
tables, the listeners and the ephemeral ports; IPv6 gets its own checks (sources, MSS, flow labels)
and ICMPv6 (echo, errors to their connection). Two Stack objects exchange packets directly."""

from __future__ import annotations

import errno

import pytest

from ustack.stack import Stack, StackError
from ustack.tcp import State, TcpConfig
from ustack.tcp.errors import TcpError
from ustack.tcp.isn import IsnGenerator
from ustack.wire import Icmpv6Message, build_icmp6_packet, build_tcp_packet, parse_packet
from ustack.wire import icmpv6
from ustack.wire.ipv4 import address_value
from ustack.wire.ipv6 import address6_value
from ustack.wire.tcp import ACK, RST, SYN, TcpSegment

SERVER4, CLIENT4 = address_value("10.77.0.2"), address_value("10.77.0.1")
SERVER6, CLIENT6 = address6_value("fd00:77::2"), address6_value("fd00:77::1")
SECRET = b"k" * 32  # fixed, so flow labels and ports repeat from run to run


def host(address=SERVER4, address6=SERVER6, port_seed=1, **keywords) -> Stack:
    return Stack(address, TcpConfig(), address6=address6, isn_generator=IsnGenerator(secret=SECRET), port_seed=port_seed,
                 **keywords)


def client_and_server() -> tuple[Stack, Stack]:
    return host(CLIENT4, CLIENT6, port_seed=2), host()


def exchange(a: Stack, b: Stack, now: float, log: list[bytes] | None = None) -> None:
    """Carry packets both ways until both hosts are quiet."""
    for _ in range(100):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for packet in sender.transmit(now):
                moved = True
                if log is not None:
                    log.append(packet)
                receiver.receive(packet, now)
        if not moved:
            return
    raise AssertionError("the hosts never went quiet")


def test_a_dual_stack_listener_takes_both_families_in_one_table():
    client, server = client_and_server()
    listener = server.listen(80)
    log: list[bytes] = []
    over6 = client.connect(SERVER6, 80, 0.0)
    over4 = client.connect(SERVER4, 80, 0.0)
    exchange(client, server, 0.0, log)
    assert over6.state is State.ESTABLISHED and over4.state is State.ESTABLISHED
    accepted = [listener.accept(), listener.accept()]
    by_family = {type(connection.local_address): connection for connection in accepted}
    assert by_family[bytes].local_address == SERVER6 and by_family[bytes].remote_address == CLIENT6
    assert by_family[int].local_address == SERVER4 and by_family[int].remote_address == CLIENT4
    assert set(server.connections) == {(SERVER6, 80, CLIENT6, over6.local_port), (SERVER4, 80, CLIENT4, over4.local_port)}
    # Data both ways over IPv6.
    over6.send(b"hello over six", 0.0)
    client.poke(over6)
    exchange(client, server, 0.0)
    assert by_family[bytes].recv(100, 0.0) == b"hello over six"
    # The MSS each side announced leaves room for its family's header (RFC 9293 3.7.1).
    syns = [parse_packet(packet) for packet in log if parse_packet(packet).tcp.flags & SYN]
    assert {(syn.ip.version, syn.tcp.options.mss) for syn in syns} == {(6, 1440), (4, 1460)}


def test_each_ipv6_connection_keeps_one_flow_label():
    client, server = client_and_server()
    server.listen(80)
    log: list[bytes] = []
    first = client.connect(SERVER6, 80, 0.0)
    second = client.connect(SERVER6, 80, 0.0)
    exchange(client, server, 0.0, log)
    first.send(b"x" * 5000, 1.0)
    second.send(b"y" * 5000, 1.0)
    client.poke(first)
    client.poke(second)
    exchange(client, server, 1.0, log)
    labels: dict[tuple, set[int]] = {}
    for packet in log:
        parsed = parse_packet(packet)
        flow = (parsed.ip.src, parsed.tcp.src_port, parsed.ip.dst, parsed.tcp.dst_port)
        labels.setdefault(flow, set()).add(parsed.ip.flow_label)
    assert len(labels) == 4  # two connections, two directions
    # RFC 6437 3: one label for the whole life of a flow, not zero, different between flows.
    assert all(len(values) == 1 for values in labels.values())
    every = [next(iter(values)) for values in labels.values()]
    assert 0 not in every and len(set(every)) == 4


@pytest.mark.parametrize(("bound_to", "refused_from", "refused_to"), [
    (SERVER4, CLIENT6, SERVER6),  # bound to the IPv4 address: IPv6 SYNs find no listener
    (SERVER6, CLIENT4, SERVER4),  # and the other way round (like IPV6_V6ONLY)
])  # fmt: skip
def test_a_listener_bound_to_one_family_refuses_the_other(bound_to, refused_from, refused_to):
    server = host()
    server.listen(80, address=bound_to)
    syn = TcpSegment(40000, 80, 1000, 0, SYN, 65535)
    server.receive(build_tcp_packet(refused_from, refused_to, syn), 0.0)
    [reply] = server.transmit(0.0)
    parsed = parse_packet(reply)
    assert (parsed.ip.src, parsed.ip.dst) == (refused_to, refused_from)
    assert parsed.tcp.flags == RST | ACK and parsed.tcp.ack == 1001
    assert server.drops["tcp_no_connection"] == 1


def test_an_unmatched_ipv6_segment_gets_a_reset_and_a_reset_gets_nothing():
    server = host()
    server.receive(build_tcp_packet(CLIENT6, SERVER6, TcpSegment(40000, 81, 5, 777, ACK, 100)), 0.0)
    [reply] = server.transmit(0.0)
    parsed = parse_packet(reply)
    assert parsed.ip.version == 6 and parsed.tcp.flags == RST and parsed.tcp.seq == 777  # RFC 9293 3.10.7.1
    server.receive(build_tcp_packet(CLIENT6, SERVER6, TcpSegment(40000, 81, 5, 0, RST, 0)), 0.0)
    assert server.transmit(0.0) == []


def test_listening_on_an_address_not_ours_is_refused():
    with pytest.raises(StackError) as error:
        host().listen(80, address=address6_value("fd00:99::1"))
    assert error.value.errno == errno.EADDRNOTAVAIL


def test_ipv6_echo_is_answered_with_the_same_identifier_sequence_and_data():
    server = host()
    request = Icmpv6Message(icmpv6.ECHO_REQUEST, 0, 0x4242, 7, payload=b"ping6 data")
    server.receive(build_icmp6_packet(CLIENT6, SERVER6, request), 0.0)
    [reply] = server.transmit(0.0)
    parsed = parse_packet(reply)
    assert (parsed.ip.src, parsed.ip.dst) == (SERVER6, CLIENT6)
    assert parsed.icmp == Icmpv6Message(icmpv6.ECHO_REPLY, 0, 0x4242, 7, payload=b"ping6 data")
    assert server.counters["icmp6_echo_replies"] == 1


@pytest.mark.parametrize("source", [
    "ff02::1",           # multicast (RFC 4291 2.7)
    "::",                # unspecified (2.5.2)
    "::1",               # loopback (2.5.3)
    "fd00:77::2",        # our own address
    "::ffff:10.77.0.1",  # IPv4-mapped (2.5.5.2)
])  # fmt: skip
def test_impossible_ipv6_sources_are_dropped_unanswered(source):
    server = host()
    server.listen(80)
    src = address6_value(source)
    server.receive(build_tcp_packet(src, SERVER6, TcpSegment(40000, 80, 1, 0, SYN, 100)), 0.0)
    server.receive(build_icmp6_packet(src, SERVER6, Icmpv6Message(icmpv6.ECHO_REQUEST, payload=b"x")), 0.0)
    assert server.transmit(0.0) == [] and not server.connections
    assert server.drops["ipv6_bad_source_address"] == 2


def test_packets_for_other_addresses_are_dropped_by_name():
    server = host()
    for dst in ("fd00:77::3", "ff02::1"):
        server.receive(build_icmp6_packet(CLIENT6, address6_value(dst), Icmpv6Message(icmpv6.ECHO_REQUEST)), 0.0)
    assert server.transmit(0.0) == [] and server.drops["ipv6_not_our_address"] == 2


def established_with_data_in_flight(size: int = 20000):
    client, server = client_and_server()
    server.listen(80)
    connection = client.connect(SERVER6, 80, 0.0)
    exchange(client, server, 0.0)
    connection.send(b"z" * size, 1.0)
    client.poke(connection)
    in_flight = client.transmit(1.0)  # not delivered: these are what the router complains about
    return client, connection, parse_packet(in_flight[0])


def icmp6_error(message_type: int, code: int, quoted_packet, *, mtu: int = 0) -> bytes:
    """An ICMPv6 error from a router (fd00:77::fe) quoting one of the client's packets."""
    quoted = build_tcp_packet(quoted_packet.ip.src, quoted_packet.ip.dst, quoted_packet.tcp)[:1232]
    router = address6_value("fd00:77::fe")
    return build_icmp6_packet(router, CLIENT6, Icmpv6Message(message_type, code, mtu=mtu, payload=quoted))


def test_packet_too_big_lowers_the_mss_to_the_path_mtu_less_sixty():
    client, connection, sent = established_with_data_in_flight()
    assert connection.send_mss == 1440 - 12  # timestamps on
    client.receive(icmp6_error(icmpv6.PACKET_TOO_BIG, 0, sent, mtu=1400), 2.0)
    assert connection.send_mss == 1400 - 60 - 12
    resent = [parse_packet(packet) for packet in client.transmit(2.0)]
    assert resent and all(len(packet.payload) <= 1400 - 60 - 12 for packet in resent)
    assert resent[0].tcp.seq == sent.tcp.seq  # sent again at once, in smaller pieces


def test_packet_too_big_never_takes_the_path_below_1280():
    client, connection, sent = established_with_data_in_flight()
    client.receive(icmp6_error(icmpv6.PACKET_TOO_BIG, 0, sent, mtu=500), 2.0)
    # RFC 8201 4: the floor is IPv6's minimum link MTU, whatever the message says.
    assert connection.send_mss == 1280 - 60 - 12
    assert client.drops["icmp6_packet_too_big_below_minimum"] == 1


@pytest.mark.parametrize(("message_type", "code"), [
    (icmpv6.DESTINATION_UNREACHABLE, icmpv6.PORT_UNREACHABLE),
    (icmpv6.PARAMETER_PROBLEM, icmpv6.UNRECOGNIZED_NEXT_HEADER),  # IPv6's "protocol unreachable"
])  # fmt: skip
def test_hard_errors_refuse_a_connection_being_opened(message_type, code):
    client = host(CLIENT4, CLIENT6, port_seed=2)
    connection = client.connect(SERVER6, 80, 0.0)
    [syn] = client.transmit(0.0)
    client.receive(icmp6_error(message_type, code, parse_packet(syn)), 0.1)
    assert connection.state is State.CLOSED and connection.error is TcpError.REFUSED


@pytest.mark.parametrize(("message_type", "code", "soft_error"), [
    (icmpv6.DESTINATION_UNREACHABLE, icmpv6.NO_ROUTE, (3, 0)),
    (icmpv6.DESTINATION_UNREACHABLE, icmpv6.ADDRESS_UNREACHABLE, (3, 1)),
    (icmpv6.TIME_EXCEEDED, 0, (11, 0)),
    (icmpv6.PARAMETER_PROBLEM, 0, (12, 0)),
])  # fmt: skip
def test_soft_errors_are_remembered_and_never_abort(message_type, code, soft_error):
    # RFC 9293 3.9.2.2 (MUST-56), RFC 4443 3: the retransmission timer decides.
    client = host(CLIENT4, CLIENT6, port_seed=2)
    connection = client.connect(SERVER6, 80, 0.0)
    [syn] = client.transmit(0.0)
    client.receive(icmp6_error(message_type, code, parse_packet(syn)), 0.1)
    assert connection.state is State.SYN_SENT and connection.soft_error == soft_error


def test_an_icmp6_error_for_no_connection_is_counted():
    client = host(CLIENT4, CLIENT6, port_seed=2)
    stray = parse_packet(build_tcp_packet(CLIENT6, SERVER6, TcpSegment(41000, 80, 1, 0, SYN, 100)))
    client.receive(icmp6_error(icmpv6.DESTINATION_UNREACHABLE, icmpv6.PORT_UNREACHABLE, stray), 0.0)
    assert client.drops["icmp_error_no_connection"] == 1


def test_ephemeral_ports_are_one_space_for_both_families():
    # The port a fresh host would pick first (same seed, so the same walk) ...
    first_choice = host(port_seed=5).connect(CLIENT4, 9, 0.0).local_port
    # ... is skipped by an IPv4 connection when an IPv6-only listener holds it.
    stack = host(port_seed=5)
    stack.listen(first_choice, address=SERVER6)
    assert stack.connect(CLIENT4, 9, 0.0).local_port != first_choice
    # And a connection of the other family on the same port and peer port does not collide.
    assert (SERVER6, first_choice) in stack.listeners


def test_isn_hash_takes_sixteen_byte_addresses():
    generator = IsnGenerator(secret=SECRET)
    isn = generator.generate(SERVER6, 80, CLIENT6, 40000, 0.0)
    assert isn == generator.generate(SERVER6, 80, CLIENT6, 40000, 0.0)
    assert isn != generator.generate(SERVER6, 80, address6_value("fd00:77::3"), 40000, 0.0)
    # IPv4 keeps its ISNs: an int address hashes as before (zero-extended to 16 bytes).
    assert generator.generate(SERVER4, 80, CLIENT4, 40000, 0.0) == generator.generate(
        SERVER4.to_bytes(16, "big"), 80, CLIENT4.to_bytes(16, "big"), 40000, 0.0)


def test_either_family_can_be_turned_off():
    only6 = Stack(None, address6=SERVER6)
    with pytest.raises(StackError) as error:
        only6.connect(CLIENT4, 80, 0.0)
    assert error.value.errno == errno.ENETUNREACH
    only6.receive(build_tcp_packet(CLIENT4, SERVER4, TcpSegment(40000, 80, 1, 0, SYN, 100)), 0.0)
    assert only6.drops["ipv4_not_our_address"] == 1
    only4 = Stack(SERVER4)
    with pytest.raises(StackError):
        only4.connect(CLIENT6, 80, 0.0)
    only4.receive(build_icmp6_packet(CLIENT6, SERVER6, Icmpv6Message(icmpv6.ECHO_REQUEST)), 0.0)
    assert only4.transmit(0.0) == [] and only4.drops["ipv6_not_our_address"] == 1
    with pytest.raises(ValueError):
        Stack(None)


def test_time_wait_and_a_clean_close_over_ipv6():
    client, server = client_and_server()
    listener = server.listen(80)
    connection = client.connect(SERVER6, 80, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    connection.close(1.0)
    client.poke(connection)
    exchange(client, server, 1.0)
    accepted.close(1.0)
    server.poke(accepted)
    exchange(client, server, 1.0)
    assert connection.state is State.TIME_WAIT
    deadline = client.next_deadline()
    client.on_timer(deadline)
    client.transmit(deadline)
    assert not client.connections  # forgotten after 2 MSL, flow label and all
    assert not client._flow_labels


def test_syn_cookies_over_ipv6_come_back_to_the_ipv6_address():
    # A dual-stack listener answering every SYN with a cookie keeps nothing: the returning ACK
    # must rebuild the connection on the address and MSS of the family it came on.
    client = host(CLIENT4, CLIENT6, port_seed=2)
    server = Stack(SERVER4, TcpConfig(syncookies="always"), address6=SERVER6, isn_generator=IsnGenerator(secret=SECRET))
    listener = server.listen(80)
    log: list[bytes] = []
    connection = client.connect(SERVER6, 80, 0.0)
    exchange(client, server, 0.0, log)
    assert connection.state is State.ESTABLISHED
    [syn_ack] = [parse_packet(packet) for packet in log if parse_packet(packet).tcp.flags == SYN | ACK]
    assert syn_ack.ip.src == SERVER6 and syn_ack.tcp.options.mss == 1440
    accepted = listener.accept()
    assert accepted.local_address == SERVER6 and listener.counters["syncookies_validated"] == 1


def test_the_ipv6_address_is_taken_as_ipaddress_reads_it():
    for value in ("fd00:77::2", SERVER6):
        assert Stack(None, address6=value).address6 == SERVER6
    for bad in ("ff02::1", "::ffff:10.77.0.2", "10.77.0.2"):
        with pytest.raises(ValueError):
            Stack(None, address6=bad)
