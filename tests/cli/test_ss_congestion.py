"""`ustack ss -i` names the congestion control and the window scales first, as Linux's ss does
(`cubic wscale:7,7 rto:204 rtt:0.1/0.05 ...`)."""

from __future__ import annotations

import dataclasses

from ustack.commands.ss import info_text
from ustack.control import to_jsonable
from ustack.tcp import Connection, TcpConfig
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment


def established_connection(**config_changes) -> Connection:
    config = dataclasses.replace(TcpConfig(), **config_changes)
    connection = Connection.open_active(config, 0x0A000001, 40000, 0x0A000002, 80, 1000, 0.0)
    (syn,) = connection.transmit(0.0)
    assert syn.options.window_scale is not None
    syn_ack = TcpSegment(80, 40000, 5000, 1001, SYN | ACK, 65535, 0, TcpOptions(mss=1460, window_scale=7))
    connection.receive(syn_ack, 0.05)
    connection.transmit(0.05)
    return connection


def test_the_info_line_starts_with_the_algorithm_and_wscale():
    connection = established_connection()
    info = info_text(to_jsonable(connection.snapshot()), 0.05).split()
    assert info[0] == "cubic"
    assert info[1] == f"wscale:7,{connection.receive_shift}"
    assert info[2].startswith("rto:")
    # In segments, as Linux's ss; ssthresh left out while it is still "infinite" (no loss yet).
    assert "mss:1460" in info and "cwnd:10" in info
    assert not any(part.startswith("ssthresh:") for part in info)


def test_a_changed_algorithm_shows():
    connection = established_connection(congestion_control="newreno")
    assert info_text(to_jsonable(connection.snapshot()), 0.05).split()[0] == "newreno"
    connection.reconfigure(0.1, congestion_control="reno")
    assert info_text(to_jsonable(connection.snapshot()), 0.1).split()[0] == "reno"


def test_without_window_scaling_no_wscale():
    connection = Connection.open_active(TcpConfig(window_scaling=False), 0x0A000001, 40000, 0x0A000002, 80, 1000, 0.0)
    connection.transmit(0.0)
    connection.receive(TcpSegment(80, 40000, 5000, 1001, SYN | ACK, 65535, 0, TcpOptions(mss=1460)), 0.05)
    info = info_text(to_jsonable(connection.snapshot()), 0.05)
    assert info.startswith("cubic rto:") and "wscale" not in info
