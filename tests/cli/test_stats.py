"""`ustack stats` (and `ustack ss --stats`): every counter of every running ustack, read through
the control socket from a real Stack that has seen fragments, resets and a listener's drops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from control_thread import ControlThread

from ustack import cli
from ustack.control import stack_statistics
from ustack.stack import Stack
from ustack.tcp import TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import IcmpMessage, Ipv4Header, TcpSegment, build_icmp_packet, build_ipv4_packet, build_tcp_packet
from ustack.wire.icmp import ECHO_REQUEST
from ustack.wire.ipv4 import PROTOCOL_ICMP, address_value
from ustack.wire.tcp import ACK, SYN

RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"
OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")


def busy_stack() -> Stack:
    """A stack with something in each group: stack counters and drops, a pending and a discarded
    datagram, a listener with drops, a live connection with its own counter."""
    stack = Stack(OURS, TcpConfig(), isn_generator=IsnGenerator(fixed_isn=1000), port_seed=1)
    listener = stack.listen(80)
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40000, 81, 1, 0, SYN, 1000)), 0.0)  # reset
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40001, 80, 1, 5, ACK, 1000)), 0.0)  # ACK in LISTEN
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40002, 80, 1, 0, SYN, 1000)), 0.0)  # a connection
    stack.receive(build_icmp_packet(PEER, OURS, IcmpMessage(ECHO_REQUEST, payload=b"hi")), 0.0)
    header = Ipv4Header(PEER, OURS, PROTOCOL_ICMP, identification=9, dont_fragment=False, more_fragments=True)
    stack.receive(build_ipv4_packet(header, bytes(64)), 0.0)
    stack.receive(build_ipv4_packet(header._replace(fragment_offset=32), bytes(64)), 0.0)  # overlap
    stack.transmit(0.0)
    [connection] = stack.connections.values()
    connection.drops["example_reason"] += 3
    listener.counters = Counter(syn_cookies_sent=4)  # as another part of the core may add
    return stack


@pytest.fixture
def run_directory(monkeypatch):
    directory = Path(tempfile.mkdtemp(prefix="ust-stats-", dir="/tmp"))  # short: socket paths are limited
    monkeypatch.setenv("USTACK_RUN_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def running_ustack(run_directory):
    stack = busy_stack()
    control = ControlThread(lambda: [], run_directory, lambda: stack_statistics(stack))
    yield stack
    control.close()


def counters_printed(output: str) -> dict[str, str]:
    lines = output.splitlines()
    assert lines[0] == f"#ustack serve (pid {os.getpid()}) 10.77.0.2"
    return dict(line.split() for line in lines[1:])


def test_every_group_of_counters_is_printed_one_per_line(running_ustack, capsys):
    assert cli.main(["stats"]) == 0
    printed = counters_printed(capsys.readouterr().out)
    assert printed["stack.drops.tcp_no_connection"] == "1"
    assert printed["stack.resets_sent"] == "1"
    assert printed["stack.icmp_echo_replies"] == "1"
    assert printed["stack.drops.reassembly_overlap"] == "2"
    assert printed["stack.reassembly_datagrams_discarded"] == "1"
    assert printed["reassembly.pending_datagrams"] == "1"  # the discarded one, refused until its timeout
    assert printed["reassembly.memory_limit"] == str(4 * 1024 * 1024)
    assert printed["listener.0.0.0.0:80.drops.ack_in_listen"] == "1"
    assert printed["listener.0.0.0.0:80.syn_cookies_sent"] == "4"  # a Counter nobody told stats about
    assert printed["connections.open"] == "1"
    assert printed["connections.drops.example_reason"] == "3"
    assert printed["stack.packets_in"] == str(running_ustack.counters["packets_in"])


def test_json_has_the_same_counters_structured(running_ustack, capsys):
    assert cli.main(["stats", "--json"]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    assert answer["pid"] == os.getpid() and answer["program"] == "ustack serve"
    statistics = answer["statistics"]
    assert statistics["stack"]["drops"]["tcp_no_connection"] == 1
    assert statistics["listeners"][0]["local"] == {"address": "0.0.0.0", "port": 80}
    assert statistics["listeners"][0]["drops"] == {"ack_in_listen": 1}
    assert statistics["connections"]["open"] == 1
    assert statistics["reassembly"]["pending_datagrams"] == 1
    assert statistics["reassembly6"]["pending_datagrams"] == 0  # IPv6's fragments are held apart


def test_ss_stats_is_the_same_command(running_ustack, capsys):
    assert cli.main(["stats"]) == 0
    direct = capsys.readouterr().out
    assert cli.main(["ss", "--stats"]) == 0
    assert capsys.readouterr().out == direct


def test_counters_of_ended_connections_stay_in_the_totals(running_ustack, capsys):
    [connection] = running_ustack.connections.values()
    connection.abort(0.0)
    running_ustack.poke(connection)
    running_ustack.transmit(0.0)
    assert running_ustack.connections == {}
    assert cli.main(["stats"]) == 0
    printed = counters_printed(capsys.readouterr().out)
    assert printed["connections.open"] == "0"
    assert printed["connections.drops.example_reason"] == "3"


def test_pid_selects_one_ustack(running_ustack, capsys):
    assert cli.main(["stats", "--pid", str(os.getpid())]) == 0
    assert "stack.packets_in" in capsys.readouterr().out


def test_no_running_ustack_is_a_note_not_an_error(run_directory, capsys):
    assert cli.main(["stats"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"ustack stats: no running ustack (no control sockets in {run_directory})\n"
    assert cli.main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_ustack_without_statistics_is_reported_in_one_line(run_directory, capsys):
    control = ControlThread(lambda: [], run_directory)
    try:
        assert cli.main(["stats"]) == 0
    finally:
        control.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"ustack stats: pid {os.getpid()}: this ustack does not report statistics\n"


@pytest.mark.parametrize("arguments, message", [
    (["stats", "--pid", "abc"], "ustack stats: argument --pid: a process id is a positive number, not 'abc'"),
    (["stats", "--pid", "-3"], "ustack stats: argument --pid: a process id is a positive number, not '-3'"),
    (["stats", "--pid", "4194305"], "ustack stats: no running ustack with pid 4194305 (running: none)"),
    (["stats", "--bogus"], "ustack stats: unrecognized arguments: --bogus"),
])
def test_bad_arguments_get_one_line_and_exit_2(run_directory, arguments, message):
    result = subprocess.run([sys.executable, "-c", RUN_CLI, *arguments], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "USTACK_RUN_DIR": str(run_directory)})
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(message), line


def test_each_group_prints_its_counters_then_its_drops(running_ustack, capsys):
    assert cli.main(["stats"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    stack_names = [name for name in names if name.startswith("stack.")]
    first_drop = next(index for index, name in enumerate(stack_names) if name.startswith("stack.drops."))
    assert all(not name.startswith("stack.drops.") for name in stack_names[:first_drop])
    assert all(name.startswith("stack.drops.") for name in stack_names[first_drop:])
    assert stack_names[:first_drop] == sorted(stack_names[:first_drop])
    groups = [name.split(".")[0] for name in names]
    assert groups == sorted(groups, key=["stack", "reassembly", "reassembly6", "connections", "runtime", "listener"].index)
