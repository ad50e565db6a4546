"""TCP Fast Open (RFC 7413, ustack/tcp/fastopen.py) and quick-ACK mode, on virtual time.

Two sans-IO Stacks, a client and a server, pass packets by hand; a packet can be dropped or forged
on the way. The attacker of the invalid-cookie test knows the server's address and port and sends
SYNs from its own address with a cookie it made up (it never saw the server's secret)."""

from __future__ import annotations

import dataclasses

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

CLIENT, SERVER = 0x0A590001, 0x0A590002
PORT = 80
SERVER_CONFIG = TcpConfig(fast_open_server=True)


class Net:
    """A client and a server stack and the packets between them."""

    def __init__(self, server_config=SERVER_CONFIG, queue=16, client_config=None):
        self.client = Stack(CLIENT, client_config, isn_generator=IsnGenerator(secret=b"c" * 32), port_seed=1)
        self.server = Stack(SERVER, server_config, isn_generator=IsnGenerator(secret=b"s" * 32), port_seed=2)
        self.listener = self.server.listen(PORT)
        self.listener.fast_open_queue = queue  # the TCP_FASTOPEN socket option
        self.now = 0.0
        self.log: list[tuple[str, TcpSegment]] = []  # (sender, segment)

    def run(self, drop=lambda sender, segment: False, steps=20) -> None:
        """Exchange packets until both are quiet; `drop` decides which are lost."""
        for _ in range(steps):
            moved = False
            for name, source, target in (("client", self.client, self.server), ("server", self.server, self.client)):
                for packet in source.transmit(self.now):
                    moved = True
                    segment = parse_packet(packet).tcp
                    self.log.append((name, segment))
                    if not drop(name, segment):
                        target.receive(packet, self.now)
            if not moved:
                return

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.client.on_timer(self.now)
        self.server.on_timer(self.now)

    def connect(self, data: bytes = b"", fast_open=True):
        connection = self.client.connect(SERVER, PORT, self.now, fast_open=fast_open)
        if data:
            connection.send(data, self.now)
        return connection

    def sent(self, name: str, flags: int) -> list[TcpSegment]:
        return [segment for sender, segment in self.log if sender == name and segment.flags & (SYN | ACK) == flags]


def test_first_connection_asks_for_a_cookie_and_caches_it():
    net = Net()
    connection = net.connect(b"GET /")
    net.run()
    (syn,) = net.sent("client", SYN)
    assert syn.options.fast_open == b"" and syn.payload == b""  # a cookie request, no data (4.1.1)
    (syn_ack,) = net.sent("server", SYN | ACK)
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    assert syn_ack.options.fast_open == cookie and len(cookie) == 8
    assert net.client.fast_open_cookies.get(SERVER) == (cookie, 1460, False)
    assert net.listener.counters["fast_open_cookie_requested"] == 1
    assert connection.state is State.ESTABLISHED
    server_side = net.listener.accept()
    assert server_side.recv(100, net.now) == b"GET /"  # sent after the handshake


def test_valid_cookie_data_is_accepted_on_the_syn_and_acknowledged_by_the_syn_ack():
    net = Net()
    net.connect()
    net.run()
    net.listener.accept()
    net.log.clear()
    connection = net.connect(b"GET / HTTP/1.0\r\n\r\n")
    net.client.on_timer(net.now)
    packets = net.client.transmit(net.now)
    (syn,) = [parse_packet(packet).tcp for packet in packets]
    assert syn.payload == b"GET / HTTP/1.0\r\n\r\n" and syn.options.fast_open == net.client.fast_open_cookies.get(SERVER)[0]
    net.server.receive(packets[0], net.now)
    # RFC 7413 4.2: the data is the application's before the handshake completes.
    server_side = net.listener.accept()
    assert server_side is not None and server_side.state is State.SYN_RECEIVED
    assert server_side.recv(100, net.now) == b"GET / HTTP/1.0\r\n\r\n"
    net.run()
    (syn_ack,) = net.sent("server", SYN | ACK)
    assert syn_ack.ack == syn.seq + 1 + len(syn.payload)  # the SYN-ACK acknowledges the data
    assert syn_ack.options.fast_open is None  # the client's cookie is right: no new one
    assert net.listener.counters["fast_open_accepted"] == 1
    assert net.client.fast_open_cookies.counters["fast_open_syn_data_acked"] == 1
    assert connection.state is State.ESTABLISHED and server_side.state is State.ESTABLISHED
    assert not [segment for sender, segment in net.log if sender == "client" and segment.payload]  # not sent twice
    assert connection.snd_una == connection.snd_nxt


def test_invalid_cookie_data_is_dropped_and_a_cookie_sent():
    """Attacker: knows the server's address and port, sends SYN data with a made-up cookie."""
    net = Net()
    attempts = 50
    syn_acks = []
    for i in range(attempts):
        forged = TcpSegment(20000 + i, PORT, 1000, 0, SYN, 65535,
                            options=TcpOptions(mss=1460, fast_open=i.to_bytes(8, "big")), payload=b"evil")
        net.server.receive(build_tcp_packet(CLIENT, SERVER, forged), net.now)
        syn_acks += [parse_packet(packet).tcp for packet in net.server.transmit(net.now)]
    assert len(syn_acks) == attempts
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    assert all(s.ack == 1001 and s.options.fast_open == cookie for s in syn_acks)  # data not acknowledged
    assert net.listener.counters["fast_open_cookie_invalid"] == attempts
    assert net.listener.counters["fast_open_accepted"] == 0
    assert net.listener.accept() is None  # nothing was delivered


def test_client_without_a_valid_cookie_resends_its_data_after_the_handshake():
    net = Net()
    net.client.fast_open_cookies.remember(SERVER, b"\x01" * 8, 1460)  # a stale cookie
    connection = net.connect(b"hello")
    net.run()
    syn = net.sent("client", SYN)[0]
    assert syn.payload == b"hello"
    assert net.listener.counters["fast_open_cookie_invalid"] == 1
    assert net.client.fast_open_cookies.counters["fast_open_syn_data_not_acked"] == 1
    # the fresh cookie replaced the stale one, and the data went again at once (not after an RTO)
    assert net.client.fast_open_cookies.get(SERVER)[0] == net.server.isn_generator.fast_open_cookie(CLIENT)
    data_segments = [s for sender, s in net.log if sender == "client" and s.payload and not s.flags & SYN]
    assert [s.payload for s in data_segments] == [b"hello"]
    assert net.listener.accept().recv(10, net.now) == b"hello"
    net.advance(0.1)  # the server's delayed ACK of the data
    net.run()
    assert connection.snd_una == connection.snd_nxt


def test_syn_data_the_syn_ack_did_not_take_goes_again_whole_nagle_holding_back_no_tail():
    """A server with a 1,000-byte MSS refuses the cookie: the 1,200 bytes of the SYN go again as a
    full segment and its tail at once. The 200 were sent before (below SND.MAX), so Nagle (RFC 9293 3.7.4, for
    new data) does not hold them until the first 1,000 are acknowledged (Linux resends all 1,200)."""
    net = Net(server_config=dataclasses.replace(SERVER_CONFIG, mss=1000))
    net.client.fast_open_cookies.remember(SERVER, b"\x01" * 8, 1460)  # a stale cookie
    data = bytes(range(200)) * 6
    connection = net.connect(data)
    net.run()
    assert net.sent("client", SYN)[0].payload == data
    resent = [s.payload for sender, s in net.log if sender == "client" and s.payload and not s.flags & SYN]
    first = len(resent[0])  # a full segment: the MSS less the timestamp option
    assert first == connection.send_mss < len(data)
    assert resent == [data[:first], data[first:]]  # the tail too, before any ACK came
    assert net.listener.accept().recv(2000, net.now) == data
    net.advance(0.5)
    net.run()
    assert connection.snd_una == connection.snd_nxt


def test_syn_data_is_sent_again_when_the_syn_is_lost():
    net = Net()
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    net.client.fast_open_cookies.remember(SERVER, cookie, 1460)
    connection = net.connect(b"hello")
    net.run(drop=lambda sender, segment: sender == "client" and segment.flags & SYN)
    assert connection.state is State.SYN_SENT
    net.advance(1.0)  # the SYN's retransmission timer (RFC 6298 2.1)
    net.run()
    syns = net.sent("client", SYN)
    assert [s.payload for s in syns] == [b"hello", b""]  # the retransmitted SYN carries no data
    assert syns[0].options.fast_open == cookie and syns[1].options.fast_open is None  # nor the option
    assert connection.state is State.ESTABLISHED
    net.run()
    assert net.listener.accept().recv(10, net.now) == b"hello"
    net.advance(0.1)  # the server's delayed ACK of the data
    net.run()
    assert connection.snd_una == connection.snd_nxt


def test_fast_open_queue_limits_accepted_data_syns():
    net = Net(queue=2)
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    for i in range(4):  # the handshakes never complete: the queue stays full
        syn = TcpSegment(30000 + i, PORT, 5000, 0, SYN, 65535, options=TcpOptions(mss=1460, fast_open=cookie),
                         payload=b"data")
        net.server.receive(build_tcp_packet(CLIENT, SERVER, syn), net.now)
        net.server.transmit(net.now)
    assert net.listener.counters["fast_open_accepted"] == 2
    assert net.listener.counters["fast_open_queue_full"] == 2
    assert len(net.listener.accept_queue) == 2 and len(net.listener.syn_queue) == 2


def test_a_listener_without_fast_open_ignores_the_option():
    net = Net(server_config=TcpConfig())  # fast_open_server off (the default)
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    net.client.fast_open_cookies.remember(SERVER, cookie, 1460)
    net.connect(b"hello")
    net.run()
    (syn_ack,) = net.sent("server", SYN | ACK)
    assert syn_ack.options.fast_open is None and syn_ack.ack == net.sent("client", SYN)[0].seq + 1
    assert not net.listener.counters
    assert net.listener.accept().recv(10, net.now) == b"hello"


def test_no_fast_open_unless_the_application_asks():
    net = Net()
    net.connect(b"hello", fast_open=False)
    net.run()
    assert net.sent("client", SYN)[0].options.fast_open is None


# ---------------------------------------------------------------------- quick ACK
def _ack_times(config: TcpConfig, count: int = 20) -> list[bool]:
    """For `count` lone data segments 100 ms apart to a server with `config`: was each
    acknowledged at once?"""
    net = Net(server_config=config)
    connection = net.connect(fast_open=False)
    net.run()
    net.listener.accept()
    immediate = []
    for _ in range(count):
        connection.send(b"x" * 100, net.now)
        net.client.poke(connection)
        net.log.clear()
        net.run()
        immediate.append(any(sender == "server" and not segment.payload for sender, segment in net.log))
        net.advance(0.1)
        net.run()
    return immediate


def test_quick_ack_acknowledges_the_first_segments_at_once():
    assert _ack_times(TcpConfig(quick_ack_segments=16)) == [True] * 16 + [False] * 4


def test_without_quick_ack_a_lone_segment_waits_for_the_delayed_ack_timer():
    assert _ack_times(TcpConfig(quick_ack_segments=0)) == [False] * 20


def test_quick_ack_is_bounded_by_the_window():
    config = dataclasses.replace(TcpConfig(quick_ack_segments=16), receive_buffer_size=3000)
    immediate = _ack_times(config, count=5)
    # 3000 bytes of window hold 2 pairs of 536-byte segments: 2 quick ACKs, then delayed ones
    assert immediate == [True, True, False, False, False]


def test_a_cookie_of_a_length_rfc_7413_does_not_allow_is_not_cached():
    """RFC 7413 4.1.1: a cookie is 4 to 16 bytes; as Linux, a SYN-ACK's cookie of 2 bytes (or of
    an odd length) is no cookie: the client keeps the one it had, and the server's new MSS."""
    net = Net()
    net.connect()
    net.run()
    cookie = net.server.isn_generator.fast_open_cookie(CLIENT)
    for forged in (b"\x11\x22", b"\x11\x22\x33\x44\x55"):
        connection = net.connect(b"x" * 100)
        [syn] = [segment for segment in (parse_packet(packet).tcp for packet in net.client.transmit(net.now))
                 if segment.flags & (SYN | ACK) == SYN]
        assert syn.options.fast_open == cookie and len(syn.payload) == 100
        options = TcpOptions(mss=940, fast_open=forged)
        syn_ack = TcpSegment(PORT, syn.src_port, 5000, syn.seq + 101, SYN | ACK, 65535, options=options)
        net.client.receive(build_tcp_packet(SERVER, CLIENT, syn_ack), net.now)
        assert connection.state is State.ESTABLISHED
        assert net.client.fast_open_cookies.get(SERVER) == (cookie, 940, False), forged
