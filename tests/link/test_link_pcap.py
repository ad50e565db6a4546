"""PcapWriter: both directions into a pcap that our reader and the real tcpdump read."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ustack.link import MemoryLink, PcapWriter
from ustack.wire import pcap

from link_helpers import ScriptedLink, numbered_packets, tcp_packet


def test_records_both_directions_readable_while_running(tmp_path):
    path = tmp_path / "trace.pcap"
    a, b = MemoryLink.pair()
    link = PcapWriter(a, path, timestamp_offset=1_700_000_000.0)
    try:
        outgoing = numbered_packets(3)
        incoming = [tcp_packet(seq=5, flags="SA")]
        link.send_batch(outgoing[:2], now=1.25)
        link.send(outgoing[2], now=1.5)
        b.send_batch(incoming, 2.0)
        assert link.receive_batch(2.0) == incoming
        # Still open: everything so far is already on disk.
        linktype, records = pcap.read_records(path.read_bytes())
        records = list(records)
        assert linktype == pcap.LINKTYPE_RAW
        assert [r.data for r in records] == outgoing + incoming
        assert [r.timestamp for r in records] == pytest.approx(
            [1_700_000_001.25, 1_700_000_001.25, 1_700_000_001.5, 1_700_000_002.0])
        assert b.receive_batch(2.0) == outgoing  # and the packets did go through
        assert link.stats()["PcapWriter(%s)" % path]["packets_written"] == 4
    finally:
        link.close()
    assert a.closed  # closing the chain closes the device


def test_tcpdump_reads_it(tmp_path):
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.fail("tcpdump is not installed (scripts/test installs it: apt-get install tcpdump)")
    path = tmp_path / "trace.pcap"
    with PcapWriter(ScriptedLink(), path, timestamp_offset=0.0) as link:
        link.send(tcp_packet(seq=1000, flags="S"), 0.5)
        link.send(numbered_packets(1)[0], 0.75)
    result = subprocess.run([tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "IP 10.77.0.1.40000 > 10.77.0.2.80: Flags [S]" in lines[0]
    assert "IP 10.77.0.1 > 10.77.0.2: ICMP echo request" in lines[1]
    assert "link-type RAW" in result.stderr  # LINKTYPE_RAW, as tcpdump names it


def test_writes_to_an_open_binary_file(tmp_path):
    path = tmp_path / "trace.pcap"
    with open(path, "wb") as file:
        link = PcapWriter(ScriptedLink(), file, timestamp_offset=0.0)
        link.send(tcp_packet(), 0.0)
        link.close()
        assert not file.closed  # not ours to close
    _, records = pcap.read_records(path.read_bytes())
    assert [r.data for r in records] == [tcp_packet()]
