"""`ustack serve --plot DIR`: the file names (plot_live.plot_file_name, their one owner) carry no
colon for IPv6 and read as tcpdump's endpoints, ours first; a LivePlots fed a short connection
over each family writes exactly that file."""

from __future__ import annotations

import ipaddress
import io
import re

import pytest

from ustack.trace.plot_live import LivePlots, plot_file_name
from ustack.wire import TcpSegment, build_tcp_packet
from ustack.wire.tcp import ACK, FIN, PSH, SYN

V4 = (int(ipaddress.IPv4Address("10.77.0.2")), int(ipaddress.IPv4Address("10.77.0.1")))
V6 = (ipaddress.IPv6Address("fd00:77::2").packed, ipaddress.IPv6Address("fd00:77::1").packed)
# What a shell needs quoted, and what Windows/SMB/FAT refuse in a file name.
UNSAFE = re.compile(r"[:/\\*?\"<>|\[\]\s'$&;()]")


def test_ipv4_names_are_tcpdump_endpoints_ours_first():
    assert plot_file_name(1, (V4[0], 80, V4[1], 41234)) == "1-10.77.0.2.80-10.77.0.1.41234.svg"


def test_ipv6_names_have_no_colons():
    assert plot_file_name(2, (V6[0], 80, V6[1], 41234)) == "2-fd00-77--2.80-fd00-77--1.41234.svg"
    full = ipaddress.IPv6Address("2001:db8:1:2:3:4:5:6").packed
    assert plot_file_name(100, (full, 65535, V6[1], 1)) == "100-2001-db8-1-2-3-4-5-6.65535-fd00-77--1.1.svg"


@pytest.mark.parametrize("addresses", [V4, V6], ids=["ipv4", "ipv6"])
def test_names_are_safe_in_a_shell_and_on_any_file_system(addresses):
    name = plot_file_name(7, (addresses[0], 8080, addresses[1], 50000))
    assert not UNSAFE.search(name), name


def packet(addresses, flags, seq, ack, payload=b"", out=True):
    ours, peer = addresses
    src, dst, ports = (ours, peer, (80, 41234)) if out else (peer, ours, (41234, 80))
    return build_tcp_packet(src, dst, TcpSegment(*ports, seq, ack, flags, 65535, payload=payload))


@pytest.mark.parametrize("addresses", [V4, V6], ids=["ipv4", "ipv6"])
def test_live_plots_write_the_named_file(tmp_path, addresses):
    said = io.StringIO()
    plots = LivePlots(str(tmp_path), output=said)
    plots.observe(0.000, "<", packet(addresses, SYN, 1000, 0, out=False))
    plots.wire_out(0.001, packet(addresses, SYN | ACK, 5000, 1001))
    plots.observe(0.002, "<", packet(addresses, ACK, 1001, 5001, out=False))
    for index in range(4):
        plots.wire_out(0.003 + index / 1000, packet(addresses, ACK | PSH, 5001 + 1000 * index, 1001, b"x" * 1000))
    plots.observe(0.010, "<", packet(addresses, ACK | FIN, 1001, 9001, out=False))
    plots.finish()
    expected = plot_file_name(1, (addresses[0], 80, addresses[1], 41234))
    assert [path.name for path in tmp_path.iterdir()] == [expected], said.getvalue()
    assert (tmp_path / expected).read_text().startswith("<?xml")
    assert f"plot: {tmp_path / expected} (" in said.getvalue()
