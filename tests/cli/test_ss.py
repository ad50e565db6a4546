"""`ustack ss` and the control sockets it reads (ustack/control.py), with fake snapshot providers:
no TUN device, no stack, just the control protocol and the table."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The `ustack` program as installed runs it: main() of ustack.cli.
RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"

from control_thread import ControlThread

from ustack import cli
from ustack.control import survey
from ustack.tcp.events import ConnectionSnapshot
from ustack.tcp.state import State
from ustack.wire.ipv4 import address_value

PID_THAT_CANNOT_EXIST = 4194305  # above Linux's largest pid_max (2**22)


@pytest.fixture
def run_directory(monkeypatch):
    # A short path: UNIX socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="ust-ss-", dir="/tmp"))
    monkeypatch.setenv("USTACK_RUN_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def snapshot(state, local, remote, **overrides):
    values = dict(
        state=state, local=local, remote=remote, snd_una=1000, snd_nxt=1000, snd_wnd=65535,
        rcv_nxt=5000, rcv_wnd=262144, cwnd=14600, ssthresh=2**31, srtt=0.0015, rttvar=0.00075,
        rto=0.2, retransmissions=2, bytes_sent=4096, bytes_received=77, send_queue=0,
        receive_queue=0, timers={}, error=None, mss=1460)
    values.update(overrides)
    return ConnectionSnapshot(**values)


SERVER = address_value("10.77.0.2")
CLIENT = address_value("10.77.0.1")
FAKE_SNAPSHOTS = [
    snapshot(State.LISTEN, (0, 80), None),
    snapshot(State.ESTABLISHED, (SERVER, 80), (CLIENT, 40000), receive_queue=12, send_queue=3456),
    snapshot(State.TIME_WAIT, (SERVER, 80), (CLIENT, 40002), timers={"time_wait": 1060.0}),
    snapshot(State.SYN_RECEIVED, (SERVER, 7), (CLIENT, 40004)),
]


@pytest.fixture
def running_ustack(run_directory):
    control = ControlThread(lambda: FAKE_SNAPSHOTS, run_directory)
    yield control
    control.close()


def test_no_running_ustack_prints_the_header_and_a_note(run_directory, capsys):
    assert cli.main(["ss"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == ["State", "Recv-Q", "Send-Q", "Local", "Address:Port", "Peer", "Address:Port", "Process"]
    assert captured.err == f"ustack ss: no running ustack (no control sockets in {run_directory})\n"


def test_no_running_ustack_in_json_is_an_empty_list(run_directory, capsys):
    assert cli.main(["ss", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_missing_run_directory_is_the_same_as_none_running(monkeypatch, capsys):
    monkeypatch.setenv("USTACK_RUN_DIR", "/nonexistent/ustack-run")
    assert cli.main(["ss"]) == 0
    assert "no running ustack" in capsys.readouterr().err


def test_control_socket_is_private_and_removed_on_close(run_directory):
    control = ControlThread(lambda: [], run_directory / "sub")
    try:
        path = control.control.path
        assert path.name == f"{os.getpid()}.sock"
        assert (path.parent.stat().st_mode & 0o777) == 0o700
        assert path.is_socket()
    finally:
        control.close()
    assert not path.exists()


def test_table_has_linux_names_and_columns(running_ustack, capsys):
    assert cli.main(["ss", "-tan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:]]
    process = ["ustack", "serve", f"pid={os.getpid()}"]
    assert [row[:5] for row in rows] == [
        ["LISTEN", "0", "0", "0.0.0.0:80", "0.0.0.0:*"],
        ["ESTAB", "12", "3456", "10.77.0.2:80", "10.77.0.1:40000"],
        ["TIME-WAIT", "0", "0", "10.77.0.2:80", "10.77.0.1:40002"],
        ["SYN-RECV", "0", "0", "10.77.0.2:7", "10.77.0.1:40004"],
    ]
    assert all(row[5:] == process for row in rows)


def test_info_adds_the_core_numbers_in_ss_units(running_ustack, capsys):
    assert cli.main(["ss", "-i", "--state", "time-wait"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header, the TIME-WAIT row, its info line
    assert lines[0].startswith("Recv-Q")  # one state asked for: no State column, as in ss
    assert lines[1].split()[2:4] == ["10.77.0.2:80", "10.77.0.1:40002"]
    info = lines[2].split()
    assert "rto:200" in info and "rtt:1.5/0.75" in info and "mss:1460" in info and "cwnd:10" in info
    assert "retrans:2" in info and "bytes_sent:4096" in info
    assert not any(part.startswith("ssthresh:") for part in info)  # never set yet: left out, as Linux
    assert "timer:(time_wait,60.000sec)" in info  # deadline 1060 at now 1000


def test_info_counts_cwnd_and_ssthresh_in_segments_as_linux_does():
    from ustack.commands.ss import info_text

    connection = {"mss": 1448, "cwnd": 43 * 1448 + 100, "ssthresh": 30 * 1448, "congestion_control": "cubic"}
    assert info_text(connection, None) == "cubic mss:1448 cwnd:43 ssthresh:30"
    # From a ustack whose snapshots carry no MSS: bytes, said so.
    assert info_text({"cwnd": 14600, "ssthresh": 2**31}, None) == "cwnd:14600B"


def test_json_lists_every_connection_with_its_process(running_ustack, capsys):
    assert cli.main(["ss", "--json"]) == 0
    connections = json.loads(capsys.readouterr().out)
    assert [c["linux_state"] for c in connections] == ["LISTEN", "ESTAB", "TIME-WAIT", "SYN-RECV"]
    established = connections[1]
    assert established["state"] == "ESTABLISHED"
    assert established["local"] == {"address": "10.77.0.2", "port": 80}
    assert established["remote"] == {"address": "10.77.0.1", "port": 40000}
    assert established["receive_queue"] == 12 and established["srtt"] == 0.0015
    assert established["pid"] == os.getpid()


def test_ss_in_another_process_reads_the_socket(running_ustack, run_directory):
    result = subprocess.run([sys.executable, "-c", RUN_CLI, "ss", "--state", "estab"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "USTACK_RUN_DIR": str(run_directory)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:4] == ["12", "3456", "10.77.0.2:80", "10.77.0.1:40000"]


def test_a_bad_request_gets_an_error_answer(running_ustack):
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(running_ustack.control.path))
        client.sendall(b'{"request": "reboot"}\n')
        answer = json.loads(client.recv(65536))
    assert answer == {"error": "unknown request 'reboot'"}


def make_dead_socket(path: Path) -> None:
    """A socket file nobody listens on any more, as a killed ustack leaves behind."""
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))


def test_stale_sockets_of_dead_ustacks_are_removed_and_nothing_else(run_directory):
    stale = run_directory / f"{PID_THAT_CANNOT_EXIST}.sock"
    make_dead_socket(stale)
    unrelated = [run_directory / "notes.txt", run_directory / "12ab.sock"]
    for path in unrelated:
        path.write_text("not ours\n")
    # A live process (not a ustack) whose pid has a dead socket: skipped, not removed.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = run_directory / f"{sleeper.pid}.sock"
        make_dead_socket(alive)
        result = survey(run_directory)
        assert result.answers == [] and result.problems == []
        assert not stale.exists()
        assert alive.exists()
        assert all(path.exists() for path in unrelated)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_survey_collects_every_running_ustack(run_directory):
    # Two running ustacks need two live pids: the first server's socket is renamed to the pid of
    # a sleeping process (it keeps listening under the new name), then a second one starts.
    sleeper = subprocess.Popen(["sleep", "60"])
    first = ControlThread(lambda: FAKE_SNAPSHOTS[:1], run_directory)
    moved = run_directory / f"{sleeper.pid}.sock"
    first.control.path.rename(moved)
    first.control.path = moved
    second = ControlThread(lambda: FAKE_SNAPSHOTS[1:2], run_directory)
    try:
        result = survey(run_directory)
        assert len(result.answers) == 2
        states = sorted(c["state"] for answer in result.answers for c in answer["connections"])
        assert states == ["ESTABLISHED", "LISTEN"]
    finally:
        second.close()
        first.close()
        sleeper.kill()
        sleeper.wait()
