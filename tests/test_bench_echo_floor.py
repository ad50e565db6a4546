"""scripts/bench_echo_floor.py's reflector: the least TCP an echo over TUN needs, checked packet
by packet against an independent builder (scapy) and ustack's own parser (which verifies both
checksums), so that the floor it measures is a round trip a real client would accept."""

from __future__ import annotations

import sys
from pathlib import Path

from scapy.layers.inet import IP, TCP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_echo_floor import ACK, FIN, OUR_ISS, PSH, SYN, Reflector  # noqa: E402

from ustack.wire.codec import parse_packet  # noqa: E402
from ustack.wire.ipv4 import address_text  # noqa: E402

CLIENT, SERVER = "10.77.0.1", "10.77.0.2"
CLIENT_ISS = 0xFFFFFFF0  # just below 2**32: the client's numbers wrap during the exchange


def from_client(flags: str, seq: int, ack: int = 0, payload: bytes = b"", options=()) -> bytes:
    return bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=7, seq=seq, ack=ack, flags=flags,
                                                  window=64240, options=list(options)) / payload)


def reply_to(reflector: Reflector, packet: bytes):
    """The reply the reflector builds, parsed by ustack's parser (checksums verified), or None."""
    length = reflector.answer(packet)
    return parse_packet(bytes(reflector.reply[:length])) if length else None


def test_a_handshake_an_echo_and_a_close_are_answered_as_tcp_requires():
    reflector = Reflector()
    syn = from_client("S", CLIENT_ISS, options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)),
                                                 ("WScale", 7)])
    syn_ack = reply_to(reflector, syn)
    assert (address_text(syn_ack.ip.src), address_text(syn_ack.ip.dst)) == (SERVER, CLIENT)
    assert (syn_ack.tcp.src_port, syn_ack.tcp.dst_port) == (7, 40000)
    assert syn_ack.tcp.flags == SYN | ACK
    assert (syn_ack.tcp.seq, syn_ack.tcp.ack) == (OUR_ISS, CLIENT_ISS + 1)
    assert syn_ack.tcp.options.mss == 1460  # and nothing else: no timestamps, no window scaling

    # The third packet of the handshake, a pure ACK: nothing to say.
    assert reply_to(reflector, from_client("A", CLIENT_ISS + 1, OUR_ISS + 1)) is None

    # 64 bytes whose sequence numbers wrap past 2**32: the same bytes back, acknowledged.
    message = bytes(range(64))
    echo = reply_to(reflector, from_client("PA", CLIENT_ISS + 1, OUR_ISS + 1, message))
    assert echo.tcp.flags == PSH | ACK
    assert (echo.tcp.seq, echo.tcp.ack) == (OUR_ISS + 1, (CLIENT_ISS + 1 + 64) % 2**32)
    assert bytes(echo.payload) == message

    # The next one continues from where our first reply ended.
    second = reply_to(reflector, from_client("PA", (CLIENT_ISS + 65) % 2**32, OUR_ISS + 65, b"x" * 64))
    assert (second.tcp.seq, second.tcp.ack) == (OUR_ISS + 65, (CLIENT_ISS + 129) % 2**32)

    # The client's FIN: our FIN with its ACK, and the connection is forgotten.
    fin = reply_to(reflector, from_client("FA", (CLIENT_ISS + 129) % 2**32, OUR_ISS + 129))
    assert fin.tcp.flags == FIN | ACK
    assert (fin.tcp.seq, fin.tcp.ack) == (OUR_ISS + 129, (CLIENT_ISS + 130) % 2**32)
    assert reflector.next_to_send == {}


def test_scapy_reads_the_same_reply_with_valid_checksums():
    reflector = Reflector()
    reflector.answer(from_client("S", 100))
    length = reflector.answer(from_client("PA", 101, OUR_ISS + 1, b"hello"))
    reply = IP(bytes(reflector.reply[:length]))
    assert reply[TCP].load == b"hello"
    # scapy recomputes both checksums from scratch when told to forget them: they must agree.
    recomputed = IP(bytes(reply))
    del recomputed.chksum, recomputed[TCP].chksum
    recomputed = IP(bytes(recomputed))
    assert (reply.chksum, reply[TCP].chksum) == (recomputed.chksum, recomputed[TCP].chksum)


def test_what_is_not_its_business_gets_no_answer():
    reflector = Reflector()
    # Data for a connection it never saw a SYN of, a reset, a non-TCP packet, a runt.
    assert reflector.answer(from_client("PA", 1, 1, b"data")) == 0
    assert reflector.answer(from_client("R", 1)) == 0
    assert reflector.answer(bytes(IP(src=CLIENT, dst=SERVER, proto=17) / (b"\0" * 30))) == 0
    assert reflector.answer(b"\x45" * 10) == 0
    # For a connection it knows: a data offset past the packet's end, or more data than a reply
    # holds, gets no answer (never a reply built from a negative or oversized length).
    reflector.answer(from_client("S", 900))
    overrun = bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=7, seq=901, ack=OUR_ISS + 1, flags="PA",
                                                     dataofs=15))
    assert len(overrun) == 40 and reflector.answer(overrun) == 0
    assert reflector.answer(from_client("PA", 901, OUR_ISS + 1, b"x" * 3000)) == 0
    assert len(reflector.reply) == 20 + 24 + 2048  # its buffer never grew
    # A reset forgets a connection it knew.
    reflector.answer(from_client("S", 5))
    assert reflector.answer(from_client("R", 6)) == 0
    assert reflector.answer(from_client("PA", 6, OUR_ISS + 1, b"late")) == 0
