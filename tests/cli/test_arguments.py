"""Bad command lines give one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Not "-m ustack.cli": run as __main__, cli.py would define a second CliError class that the
# command modules (which import ustack.cli) do not raise.
RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"

from ustack import cli
from ustack.commands import network_setup


def run_ustack(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *arguments],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("arguments, complaint", [
    (["serve", "--addr", "10.77.0"], "is not an IPv4 address"),
    (["serve", "--addr", "300.1.1.1"], "is not an IPv4 address"),
    (["serve", "--host-addr", "10.77.0.1"], "needs a prefix length"),
    (["serve", "--host-addr", "10.77.0.1/33"], "is not an IPv4 address with a prefix"),
    (["serve", "--host-addr", "10.77.0.1/32"], "must leave room for two hosts"),
    (["serve", "--mtu", "67"], "MTU 67 is outside 68..65535"),
    (["serve", "--mtu", "65536"], "MTU 65536 is outside 68..65535"),
    (["serve", "--mtu", "big"], "is not a whole number"),
    (["serve", "--loss", "1"], "loss 1 is not in [0, 1)"),
    (["serve", "--loss", "-0.1"], "is not in [0, 1)"),
    (["serve", "--loss", "lots"], "is not a number"),
    (["serve", "--seed", "x"], "seed 'x' is not a whole number"),
    (["serve", "--msl", "-1"], "outside 0..3600"),
    (["serve", "--http-port", "0"], "port 0 is outside 1..65535"),
    (["serve", "--tun", "a-name-longer-than-15"], "not a usable interface name"),
    (["serve", "--netns", "../etc"], "not a usable namespace name"),
    (["serve", "--http", "/nonexistent/ustack/site"], "not a directory"),
    (["serve", "--ladder", "70000"], "port 70000 is outside 1..65535"),
    (["serve", "--ladder", "web"], "port 'web' is not a whole number"),
    (["connect", "10.77.0.1", "80", "--ladder", "80"], "unrecognized arguments: 80"),
    (["serve", "--addr", "10.77.0.1"], "must be different addresses"),
    (["connect", "10.77.0.1"], "required"),
    (["connect", "10.77.0.1", "70000"], "port 70000 is outside 1..65535"),
    (["connect", "localhost", "80"], "is not an IPv4 address"),
    (["ss", "--state", "sleeping"], "unknown state"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(arguments, complaint):
    result = run_ustack(*arguments)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert complaint in lines[0]
    assert "Traceback" not in result.stderr


def test_not_root_is_one_line_and_exit_2(monkeypatch, capsys):
    # Pretend to be an ordinary user: serve must stop before creating anything.
    monkeypatch.setattr(network_setup.os, "geteuid", lambda: 1000)
    status = cli.main(["serve", "--netns", "ust-apps-never-created", "--echo"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().splitlines() == [
        "ustack serve: needs root to create a TUN device and a network namespace (try: sudo ustack ...)"]


def test_missing_tun_device_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(network_setup, "TUN_DEVICE", "/nonexistent/dev/net/tun")
    status = cli.main(["connect", "--netns", "ust-apps-never-created", "10.77.0.1", "5000"])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/dev/net/tun is missing" in lines[0]
