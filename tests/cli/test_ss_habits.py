"""`ustack ss` typed as people type Linux's ss: combined flags, state names and groups, the port and
address filters with every operator, and/or/not, the stack column, and what it refuses.
Fake snapshots behind a real control socket (no TUN): tests/interop/test_ss_kernel.py compares
with the kernel's own ss on real connections."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from control_thread import ControlThread

from ustack import cli
from ustack.tcp.events import ConnectionSnapshot
from ustack.tcp.state import State
from ustack.wire.ipv4 import address_value

US = address_value("10.77.0.2")
KERNEL = address_value("10.77.0.1")
OTHER = address_value("10.88.0.1")


def snapshot(state, local, remote, **overrides):
    values = dict(
        state=state, local=local, remote=remote, snd_una=1000, snd_nxt=1100, snd_wnd=65535,
        rcv_nxt=5000, rcv_wnd=262144, cwnd=14600, ssthresh=2**31, srtt=0.0015, rttvar=0.00075,
        rto=0.2, retransmissions=0, bytes_sent=100, bytes_received=7, send_queue=0,
        receive_queue=0, timers={}, error=None, mss=1460)
    values.update(overrides)
    return ConnectionSnapshot(**values)


SNAPSHOTS = [
    snapshot(State.LISTEN, (0, 80), None),
    snapshot(State.LISTEN, (0, 7), None),
    snapshot(State.ESTABLISHED, (US, 80), (KERNEL, 40000), receive_queue=12, send_queue=3456,
             timers={"retransmit": 1000.25}),
    snapshot(State.TIME_WAIT, (US, 80), (KERNEL, 40002), timers={"time_wait": 1060.0}),
    snapshot(State.SYN_RECEIVED, (US, 7), (KERNEL, 40004)),
    snapshot(State.SYN_SENT, (US, 50000), (OTHER, 5000)),
    snapshot(State.CLOSE_WAIT, (US, 7), (KERNEL, 1023)),
]


@pytest.fixture
def ustack_running(monkeypatch):
    directory = Path(tempfile.mkdtemp(prefix="ust-ssh-", dir="/tmp"))
    monkeypatch.setenv("USTACK_RUN_DIR", str(directory))
    # This process's network record, as ustack/network.py writes it for serve.
    (directory / f"{os.getpid()}.network").write_text(json.dumps(
        {"pid": os.getpid(), "program": "ustack serve", "namespace": "ust-lab", "created_namespace": True,
         "tun": "ustun0", "address": "10.77.0.2", "host_interface": "10.77.0.1/24"}))
    control = ControlThread(lambda: SNAPSHOTS, directory)
    yield directory
    control.close()
    shutil.rmtree(directory, ignore_errors=True)


def ss(capsys, *arguments) -> list[list[str]]:
    """The table's rows (header dropped), each split on spaces; a State column is put back in
    front when ss's layout leaves it out (a filter naming one state), as "=" ."""
    assert cli.main(["ss", *arguments]) == 0
    lines = capsys.readouterr().out.splitlines()
    if lines[0].startswith("Recv-Q"):
        return [["="] + line.split() for line in lines[1:]]
    assert lines[0].startswith("State")
    return [line.split() for line in lines[1:]]


def test_one_state_leaves_the_state_column_out_as_ss_does(ustack_running, capsys):
    assert cli.main(["ss", "-tn", "state", "established"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["Recv-Q", "Send-Q", "Local"] and lines[1].split()[:2] == ["12", "3456"]
    assert cli.main(["ss", "-tln"]) == 0  # -l is LISTEN and CLOSED for ss: the column stays
    assert capsys.readouterr().out.startswith("State")


def endpoints(rows) -> list[tuple[str, str, str]]:
    return [(row[0], row[3], row[4]) for row in rows]


def test_default_hides_listeners_like_ss_and_a_shows_them_l_only_them(ustack_running, capsys):
    assert [row[0] for row in ss(capsys, "-tn")] == ["ESTAB", "TIME-WAIT", "SYN-RECV", "SYN-SENT", "CLOSE-WAIT"]
    assert [row[0] for row in ss(capsys, "-tan")] == [
        "LISTEN", "LISTEN", "ESTAB", "TIME-WAIT", "SYN-RECV", "SYN-SENT", "CLOSE-WAIT"]
    assert [row[3] for row in ss(capsys, "-tln")] == ["0.0.0.0:80", "0.0.0.0:7"]


def test_the_process_column_names_the_stack(ustack_running, capsys):
    rows = ss(capsys, "-tanp")
    assert all(row[5:] == ["ustack", "serve", f"pid={os.getpid()}", "netns=ust-lab", "dev=ustun0"] for row in rows)
    assert cli.main(["ss", "--json", "state", "established"]) == 0
    [connection] = json.loads(capsys.readouterr().out)
    assert (connection["namespace"], connection["device"], connection["pid"]) == ("ust-lab", "ustun0", os.getpid())


def test_N_selects_the_stacks_of_one_namespace(ustack_running, capsys):
    assert len(ss(capsys, "-tan", "-N", "ust-lab")) == 7
    assert ss(capsys, "-tan", "-N", "elsewhere") == []


def test_H_drops_the_header_and_combined_flags_add_their_parts(ustack_running, capsys):
    assert cli.main(["ss", "-tanoiemH", "state", "established"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # no header: the row, then its -i line
    row, info = lines
    assert row.startswith("12 ") and "timer:(retransmit,0.250sec)" in row
    assert "snd_una:1000 snd_nxt:1100 rcv_nxt:5000" in row and "skmem:(r12,t3456)" in row
    assert info.startswith("\t") and "rto:200" in info and "mss:1460" in info and "cwnd:10" in info


@pytest.mark.parametrize("words, expected", [
    (["state", "established"], ["ESTAB"]),
    (["state", "syn-sent"], ["SYN-SENT"]),
    (["state", "syn-recv"], ["SYN-RECV"]),
    (["state", "time-wait", "state", "close-wait"], ["TIME-WAIT", "CLOSE-WAIT"]),
    (["state", "listening"], ["LISTEN", "LISTEN"]),
    (["state", "connected"], ["ESTAB", "TIME-WAIT", "SYN-RECV", "SYN-SENT", "CLOSE-WAIT"]),
    (["state", "synchronized"], ["ESTAB", "TIME-WAIT", "SYN-RECV", "CLOSE-WAIT"]),
    (["state", "bucket"], ["TIME-WAIT", "SYN-RECV"]),
    (["state", "big"], ["LISTEN", "LISTEN", "ESTAB", "SYN-SENT", "CLOSE-WAIT"]),
    (["state", "all"], ["LISTEN", "LISTEN", "ESTAB", "TIME-WAIT", "SYN-RECV", "SYN-SENT", "CLOSE-WAIT"]),
    (["state", "all", "exclude", "listening", "exclude", "bucket"], ["ESTAB", "SYN-SENT", "CLOSE-WAIT"]),
    (["--state", "ESTABLISHED"], ["ESTAB"]),  # the RFC name, and the older flag
])
def test_state_names_and_groups(ustack_running, capsys, words, expected):
    assert cli.main(["ss", "-tn", "--json", *words]) == 0
    assert [connection["linux_state"] for connection in json.loads(capsys.readouterr().out)] == expected


@pytest.mark.parametrize("expression, expected", [
    ("sport = :80", ["10.77.0.2:80", "10.77.0.2:80"]),
    ("sport == :80", ["10.77.0.2:80", "10.77.0.2:80"]),
    ("sport eq :http", ["10.77.0.2:80", "10.77.0.2:80"]),  # a service name
    ("sport :7", ["10.77.0.2:7", "10.77.0.2:7"]),  # no operator: equality
    ("sport != :80", ["10.77.0.2:7", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("sport neq :80", ["10.77.0.2:7", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("dport < :40001", ["10.77.0.2:80", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("dport lt :40001", ["10.77.0.2:80", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("dport > :40002", ["10.77.0.2:7"]),
    ("dport gt 40002", ["10.77.0.2:7"]),
    ("dport <= :40002", ["10.77.0.2:80", "10.77.0.2:80", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("dport le :40002", ["10.77.0.2:80", "10.77.0.2:80", "10.77.0.2:50000", "10.77.0.2:7"]),
    ("dport >= :40002", ["10.77.0.2:80", "10.77.0.2:7"]),
    ("dport ge :40002", ["10.77.0.2:80", "10.77.0.2:7"]),
    ("sport>=:1024", ["10.77.0.2:50000"]),  # no spaces, as in one quoted word
])
def test_port_conditions_with_every_operator(ustack_running, capsys, expression, expected):
    assert [row[3] for row in ss(capsys, "-tn", expression)] == expected


@pytest.mark.parametrize("words, expected", [
    (["dst", "10.88.0.1"], ["10.88.0.1:5000"]),
    (["dst", "10.88.0.0/16"], ["10.88.0.1:5000"]),
    (["dst", "10.77.0.1:40002"], ["10.77.0.1:40002"]),
    (["dst", ":5000"], ["10.88.0.1:5000"]),
    (["dst", "*:1023"], ["10.77.0.1:1023"]),
    (["dst", "!=", "10.77.0.1"], ["10.88.0.1:5000"]),
    (["src", "10.77.0.2:7"], ["10.77.0.1:40004", "10.77.0.1:1023"]),
    (["src", "=", "10.77.0.2:7", "and", "dport", "<", ":2000"], ["10.77.0.1:1023"]),
    (["src", "10.77.0.2:7", "dport", "<", ":2000"], ["10.77.0.1:1023"]),  # adjacent terms: and
    (["( sport = :7 or dport = :5000 )"], ["10.77.0.1:40004", "10.88.0.1:5000", "10.77.0.1:1023"]),
    (["(", "sport", "=", ":7", "||", "dport", "=", ":5000", ")", "&&", "!", "dport", "=", ":1023"],
     ["10.77.0.1:40004", "10.88.0.1:5000"]),
    (["not", "dst", "10.77.0.1"], ["10.88.0.1:5000"]),
    (["state", "established", "dport", "=", ":40000"], ["10.77.0.1:40000"]),
    (["state", "established", "dport", "=", ":40002"], []),
])
def test_address_conditions_and_logic(ustack_running, capsys, words, expected):
    assert [row[4] for row in ss(capsys, "-tn", *words)] == expected


@pytest.mark.parametrize("arguments, complaint", [
    (["-u"], "-u is not supported (UDP: ustack has only TCP)"),
    (["-tx"], "-x is not supported (UNIX sockets"),
    (["-6"], "-6 is not supported (IPv6"),
    (["-s"], "use 'ustack stats'"),
    (["state", "sleeping"], "unknown state 'sleeping'"),
    (["sport", "=", ":99999"], "port 99999 is outside 0..65535"),
    (["sport", "=", ":nosuchservice"], "':nosuchservice' is not a port"),
    (["dst", "fe80::1"], "is not an IPv4 address"),
    (["dst", "<", "10.77.0.1"], "compares ports only"),
    (["dev", "ustun0"], "'dev' is not supported by ustack ss"),
    (["(", "sport", "=", ":80"], "')' is missing"),
    (["sport", "=", ":80", ")"], "unexpected ')'"),
    (["sport", "=", ":80", "state", "listening"], "'state' must come first"),
    (["bogus"], "'bogus' is not a condition"),
    (["sport"], "the port after 'sport' is missing"),
])
def test_what_ss_has_and_ustack_does_not_is_one_line_and_exit_2(ustack_running, capsys, arguments, complaint):
    assert cli.main(["ss", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ustack ss: ") and complaint in lines[0], captured.err
