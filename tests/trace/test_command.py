"""`ustack ladder FILE.pcap [--conn PORT] [--relative] [--svg FILE] [--mermaid]`."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest
from scapy.layers.inet import IP, UDP

from ustack.cli import main
from ustack.wire.pcap import LINKTYPE_RAW, file_header, record


@pytest.fixture
def two_connections(conversation, tmp_path):
    first = conversation()
    first.handshake()
    first.send("A", "PA", b"one")
    second = conversation(a=("10.0.0.1", 40001), b=("10.0.0.2", 8080), isn_a=7000, isn_b=9000)
    second.handshake()
    second.send("A", "PA", b"two")
    first.records.extend(second.records)
    return first.write(tmp_path / "two.pcap")


def test_text_by_default(two_connections, capsys):
    assert main(["ladder", str(two_connections)]) == 0
    out = capsys.readouterr().out
    assert "10.0.0.1:40000 (client) <-> 10.0.0.2:80 (server), 4 segments" in out
    assert "[S] seq 1000 win 64240 len 0" in out and "CLOSED*" in out


def test_conn_relative_and_mermaid(two_connections, capsys):
    assert main(["ladder", str(two_connections), "--conn", "8080", "--relative", "--mermaid"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sequenceDiagram\n")
    assert "participant R as 10.0.0.2:8080 (server)" in out
    assert "L->>R: [P.] seq 1:4 ack 1 win 64240 len 3" in out


def test_svg_file(two_connections, tmp_path, capsys):
    svg = tmp_path / "ladder.svg"
    assert main(["ladder", str(two_connections), "--svg", str(svg)]) == 0
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "[S] seq 1000" in capsys.readouterr().out  # the text still goes to the terminal


def one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ustack ladder: "), err
    for word in words:
        assert word in err, err


def test_errors_are_one_line_with_exit_2(two_connections, tmp_path, capsys):
    one_line_error(capsys, ["ladder", str(tmp_path / "missing.pcap")], "cannot read", "No such file")
    one_line_error(capsys, ["ladder", str(tmp_path)], "cannot read")
    not_pcap = tmp_path / "notes.txt"
    not_pcap.write_text("hello, this is not a capture\n")
    one_line_error(capsys, ["ladder", str(not_pcap)], "not a pcap file")
    one_line_error(capsys, ["ladder", str(two_connections), "--conn", "443"], "no TCP connection with port 443")
    udp_only = tmp_path / "udp.pcap"
    udp_only.write_bytes(file_header(LINKTYPE_RAW) + record(0.0, bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"x")))
    one_line_error(capsys, ["ladder", str(udp_only)], "no TCP connection", "not_tcp: 1")
    one_line_error(capsys, ["ladder", str(two_connections), "--svg", str(tmp_path / "no" / "such" / "dir.svg")], "cannot write")


@pytest.mark.parametrize("port", ["0", "http"])
def test_bad_port(two_connections, capsys, port):
    with pytest.raises(SystemExit) as exit_info:
        main(["ladder", str(two_connections), "--conn", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--conn" in err and "Traceback" not in err
