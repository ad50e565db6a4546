"""The network markers (ustack/network.py) and `ustack cleanup`, without root: markers of dead
and live processes in a private run directory, no namespace involved (the namespace side, after
a real SIGKILLed serve, is tests/interop/test_cli_habits.py's)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ustack import cli
from ustack.network import NetworkSettings, UstackNetwork, leftovers, read_records, write_record

PID_THAT_CANNOT_EXIST = 4194305  # above Linux's largest pid_max (2**22)


@pytest.fixture
def run_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("USTACK_RUN_DIR", str(tmp_path))
    return tmp_path


def marker(directory, pid, **fields):
    record = {"pid": pid, "program": "ustack serve", "namespace": None, "created_namespace": False,
              "tun": "ustun0", "address": "10.77.0.2", "host_interface": "10.77.0.1/24", **fields}
    (directory / f"{pid}.network").write_text(json.dumps(record))


def test_write_record_names_this_process_and_its_network(run_directory):
    network = UstackNetwork(NetworkSettings(namespace="ust-x", tun="ustun7", program="ustack connect"))
    path = write_record(network)
    assert path == run_directory / f"{os.getpid()}.network"
    [record] = read_records()
    assert record["alive"] is True
    assert {key: record[key] for key in ("pid", "program", "namespace", "tun", "created_namespace")} == {
        "pid": os.getpid(), "program": "ustack connect", "namespace": "ust-x", "tun": "ustun7",
        "created_namespace": False}
    assert leftovers() == []  # alive: never a leftover


def test_only_markers_of_dead_processes_are_leftovers_and_junk_is_ignored(run_directory):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        marker(run_directory, sleeper.pid)
        marker(run_directory, PID_THAT_CANNOT_EXIST)
        (run_directory / "12.network").write_text("not json")
        (run_directory / "13.network").write_text(json.dumps({"pid": 99}))  # a pid not its name's
        (run_directory / "notes.network").write_text("{}")
        assert [record["pid"] for record in leftovers()] == [PID_THAT_CANNOT_EXIST]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cleanup_removes_a_dead_ustacks_marker_and_socket_and_says_so(run_directory, capsys):
    marker(run_directory, PID_THAT_CANNOT_EXIST)
    (run_directory / f"{PID_THAT_CANNOT_EXIST}.sock").write_text("")
    assert cli.main(["cleanup", "--dry-run"]) == 0
    assert capsys.readouterr().out == f"would remove a marker only (left by ustack serve, pid {PID_THAT_CANNOT_EXIST})\n"
    assert (run_directory / f"{PID_THAT_CANNOT_EXIST}.network").exists()
    assert cli.main(["cleanup"]) == 0
    assert capsys.readouterr().out == f"removed a stale marker (left by ustack serve, pid {PID_THAT_CANNOT_EXIST})\n"
    assert list(run_directory.iterdir()) == []
    assert cli.main(["cleanup"]) == 0
    assert capsys.readouterr().err == "ustack cleanup: nothing left behind\n"
