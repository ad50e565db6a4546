"""`ustack ladder` on IPv6 captures: endpoints drawn `[address]:port` as ss writes them, the
connection chosen by its bracketed 4-tuple, and offloaded IPv6 TCP checksums recomputed."""

from __future__ import annotations

import struct

from ustack.cli import main
from ustack.trace.pcap_source import LINKTYPE_NULL, ip_packet, read_capture, with_checksums_recomputed
from ustack.wire.pcap import LINKTYPE_ETHERNET, file_header, record

CLIENT = ("fd00:77::1", 40000)
SERVER = ("fd00:77::2", 8000)


def ipv6_conversation(conversation, linktype=LINKTYPE_ETHERNET, client=CLIENT):
    talk = conversation(a=client, b=SERVER, linktype=linktype)
    talk.handshake()
    talk.send("A", "PA", b"hello")
    talk.send("B", "A")
    talk.send("B", "FA")
    talk.send("A", "FA")
    talk.send("B", "A")
    return talk


def test_ipv6_capture_draws_a_ladder_with_brackets(conversation, tmp_path, capsys):
    path = ipv6_conversation(conversation).write(tmp_path / "v6.pcap")  # Ethernet, type 0x86DD
    assert main(["ladder", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[fd00:77::1]:40000 (client) <-> [fd00:77::2]:8000 (server), 8 segments" in out
    assert "[S] seq 1000 win 64240" in out and "[P.] seq 1001:1006 ack 5001" in out
    # The states are inferred from the segments exactly as over IPv4.
    for state in ("SYN-SENT*", "ESTABLISHED*", "FIN-WAIT-1*", "CLOSE-WAIT*", "LAST-ACK*", "TIME-WAIT*"):
        assert state in out, state


def test_list_and_conn_by_bracketed_endpoints(conversation, tmp_path, capsys):
    first = ipv6_conversation(conversation)
    second = ipv6_conversation(conversation, client=("fd00:77::1", 40001))
    first.records.extend(second.records)
    path = first.write(tmp_path / "two.pcap")
    assert main(["ladder", str(path), "--list"]) == 0
    listing = capsys.readouterr().out
    assert "[fd00:77::1]:40000 > [fd00:77::2]:8000" in listing
    assert "[fd00:77::1]:40001 > [fd00:77::2]:8000" in listing
    assert main(["ladder", str(path), "--conn", "[fd00:77::2]:8000-[fd00:77::1]:40001"]) == 0
    assert "[fd00:77::1]:40001 (client) <-> [fd00:77::2]:8000 (server)" in capsys.readouterr().out
    assert main(["ladder", str(path), "--conn", "[fd00:77::9]:8000-[fd00:77::1]:40001"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[fd00:77::9]:8000-[fd00:77::1]:40001" in err, err


def test_ipv6_link_layers_and_offloaded_checksum(conversation):
    talk = ipv6_conversation(conversation, linktype=101)
    segment = talk.send("A", "A")  # one more packet, to break and to wrap
    assert ip_packet(LINKTYPE_NULL, struct.pack("<I", 10) + segment) == segment  # Linux's AF_INET6
    assert ip_packet(LINKTYPE_NULL, struct.pack("<I", 30) + segment) == segment  # macOS's
    broken = bytearray(segment)
    broken[40 + 16:40 + 18] = b"\x12\x34"  # the TCP checksum, as the sending host's capture shows it
    assert with_checksums_recomputed(bytes(broken)) == segment
    blob = file_header(101) + record(1.0, bytes(broken)) + record(2.0, segment)
    capture = read_capture(blob)
    assert len(capture.observations) == 2 and capture.checksums_ignored == 1
    assert capture.observations[0].tcp == capture.observations[1].tcp
