"""Bad command lines give one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The `ustack` program as installed runs it: main() of ustack.cli.
RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"

from ustack import cli
from ustack import network


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
    # Fault flags: one value, or in:VALUE,out:VALUE.
    (["serve", "--loss", "in:0.1,up:0.2"], "give one value, or in:VALUE,out:VALUE"),
    (["serve", "--loss", "in:0.1,in:0.2"], "'in' is given twice"),
    (["serve", "--loss", "out:1"], "loss 1 is not in [0, 1)"),
    (["serve", "--delay", "fast"], "is not MS[/JITTER] in milliseconds"),
    (["serve", "--delay", "50/x"], "is not MS[/JITTER] in milliseconds"),
    (["serve", "--delay", "70000"], "delay 70000 ms is outside 0..60000"),
    (["connect", "10.77.0.1", "80", "--delay", "out:-5"], "outside 0..60000"),
    (["serve", "--reorder", "1.5"], "reorder 1.5 is not in [0, 1]"),
    (["serve", "--duplicate", "lots"], "duplicate 'lots' is not a number"),
    (["serve", "--corrupt", "1"], "corrupt 1 is not in [0, 1)"),
    (["serve", "--rate", "fast"], "rate 'fast' is not a rate"),
    (["serve", "--rate", "20furlongs"], "rate '20furlongs' is not a rate"),
    (["serve", "--rate", "100bit"], "is below 544 bit/s"),
    (["serve", "--allow-upload"], "--allow-upload needs --http DIR"),
    (["connect", "10.77.0.2", "80"], "10.77.0.2 is ustack's own address (--addr); connect to the kernel side, like 10.77.0.1"),
    (["connect", "10.77.0.9", "80", "--addr", "10.77.0.9"], "10.77.0.9 is ustack's own address"),
    (["connect", "10.77.0.1", "80", "--timeout", "-1"], "outside 0..3600"),
    (["cleanup", "--force"], "ustack cleanup: unrecognized arguments: --force"),
    (["serve", "--msl", "-1"], "outside 0..3600"),
    (["serve", "--http-port", "0"], "port 0 is outside 1..65535"),
    (["serve", "--tun", "a-name-longer-than-15"], "not a usable interface name"),
    (["serve", "--netns", "../etc"], "not a usable namespace name"),
    (["serve", "--http", "/nonexistent/ustack/site"], "not a directory"),
    (["serve", "--ladder", "70000"], "port 70000 is outside 1..65535"),
    (["serve", "--ladder", "web"], "port 'web' is not a whole number"),
    (["serve", "--backlog", "0"], "backlog 0 is outside 1..65535"),
    (["serve", "--syncookies", "maybe"], "invalid choice: 'maybe'"),
    (["serve", "--ecn", "yes"], "invalid choice: 'yes'"),
    (["serve", "--fast-open", "0"], "Fast Open queue length 0 is outside 1..65535"),
    (["serve", "--synack-retries", "-1"], "retry count -1 is outside 0..20"),
    (["connect", "10.77.0.1", "80", "--ladder", "80"], "unrecognized arguments: 80"),
    (["serve", "--addr", "10.77.0.1"], "must be different addresses"),
    # Addresses that are not one host's: the kernel takes them on the device and never delivers.
    (["serve", "--addr", "0.0.0.0"], "'0.0.0.0' is not a host's address: 0.0.0.0/8 means 'this network'"),
    (["serve", "--addr", "127.0.0.1"], "'127.0.0.1' is not a host's address: loopback never leaves the kernel"),
    (["serve", "--addr", "224.0.0.1"], "'224.0.0.1' is not a host's address: it is a multicast address"),
    (["serve", "--addr", "255.255.255.255"], "is not a host's address: it is a broadcast or reserved address"),
    (["serve", "--addr", "10.77.0.255"], "--addr 10.77.0.255 is the network or broadcast address of --host-addr"),
    (["serve", "--addr", "10.77.0.0"], "--addr 10.77.0.0 is the network or broadcast address of --host-addr"),
    (["serve", "--host-addr", "127.0.0.1/8"], "'127.0.0.1/8' is not a host's address: loopback never leaves"),
    (["serve", "--host-addr", "10.77.0.0/24"], "'10.77.0.0/24' is not a host's address: it is the network's own"),
    (["serve", "--host-addr", "10.77.0.255/24"], "is not a host's address: it is the network's own address or its"),
    # The same checks for IPv6 (one function per argument, parametrised by family).
    (["serve", "--host-addr6", "fd00:77::/64"], "'fd00:77::/64' is not a host's address: it is the network's own address (a"),
    (["serve", "--host-addr6", "fd00:77::1/127"], "the prefix must leave room for two hosts (/126 or shorter)"),
    (["serve", "--host-addr6", "fd00:77::1"], "needs a prefix length, like fd00:77::1/64"),
    (["serve", "--addr6", "ff02::1"], "'ff02::1' is not a host's address: it is a multicast address"),
    (["serve", "--addr6", "10.77.0.2"], "'10.77.0.2' is not an IPv6 address"),
    (["connect", "0.0.0.0", "80"], "argument HOST: '0.0.0.0' is not a host's address"),
    (["connect", "10.77.0.1"], "required"),
    (["connect", "10.77.0.1", "70000"], "port 70000 is outside 1..65535"),
    (["ladder", "capture.pcap", "--conn", "0"], "port 0 is outside 1..65535"),
    (["ladder", "capture.pcap", "--conn", "http"], "port 'http' is not a whole number"),
    (["connect", "localhost", "80"], "is not an IPv4 address"),
    (["ss", "--state", "sleeping"], "unknown state"),
    # An empty name would quietly mean "no pcap" or "serve the current directory".
    (["serve", "--pcap", ""], "argument --pcap: an empty name is not a path"),
    (["serve", "--http", ""], "argument --http: an empty name is not a path"),
    (["connect", "10.77.0.1", "80", "--pcap", ""], "argument --pcap: an empty name is not a path"),
    (["lab", "handshake", "--svg", ""], "argument --svg: an empty name is not a path"),
    (["ladder", "x.pcap", "--svg", ""], "argument --svg: an empty name is not a path"),
    (["conform", "x.pkt", "--junit", ""], "argument --junit: an empty name is not a path"),
    (["no-such-command"], "invalid choice"),
    # An unknown flag is the command's business: its name and its --help, not the top level's.
    (["lab", "handshake", "--bogus"], "ustack lab: unrecognized arguments: --bogus (see 'ustack lab --help')"),
    (["ss", "--bogus"], "ustack ss: unrecognized arguments: --bogus (see 'ustack ss --help')"),
    # Output files that cannot be written are refused before a run, not after it (report lost).
    (["lab", "handshake", "--svg", "/nonexistent/ustack/x.svg"],
     "ustack lab: cannot write /nonexistent/ustack/x.svg: no directory /nonexistent/ustack"),
    (["lab", "handshake", "--pcap", "/"], "ustack lab: cannot write /: it is a directory"),
    (["ladder", "x.pcap", "--svg", "/nonexistent/ustack/x.svg"],
     "ustack ladder: cannot write /nonexistent/ustack/x.svg: no directory /nonexistent/ustack"),
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
    monkeypatch.setattr(network.os, "geteuid", lambda: 1000)
    status = cli.main(["serve", "--netns", "ust-apps-never-created", "--echo"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().splitlines() == [
        "ustack serve: needs root to create a TUN device and a network namespace (try: sudo ustack ...)"]


def test_missing_tun_device_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(network, "TUN_DEVICE", "/nonexistent/dev/net/tun")
    status = cli.main(["connect", "--netns", "ust-apps-never-created", "10.77.0.1", "5000"])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/dev/net/tun is missing" in lines[0]


def test_ctrl_c_while_the_commands_are_still_loading_is_exit_130_without_traceback(monkeypatch):
    # Importing the command modules (asyncio, pyroute2, ...) takes a good part of a second after
    # `ustack` starts: Ctrl-C then is an interruption like any other, not a traceback.
    def interrupted_while_importing():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted_while_importing)
    try:
        status = cli.main(["serve", "--echo"])
    except KeyboardInterrupt:  # (caught here, or it would stop the whole pytest session)
        pytest.fail("KeyboardInterrupt escaped from main(): the user would see a traceback")
    assert status == 130


@pytest.mark.parametrize("make, complaint", [
    (lambda root: root / "empty", "no .pkt scripts in {path}"),
    (lambda root: root / "notes.txt", "{path} is not a packetdrill script (those are named *.pkt)"),
])
def test_conform_on_a_path_without_scripts_is_one_line_and_exit_2(tmp_path, make, complaint):
    # A mistyped directory must not pass a CI job as "0 scripts, nothing failed".
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a script\n")
    path = make(tmp_path)
    result = run_ustack("conform", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"ustack conform: {complaint.format(path=path)}"]


def test_conform_checks_the_junit_path_before_running_anything(tmp_path):
    script_directory = tmp_path / "scripts"
    script_directory.mkdir()
    (script_directory / "one.pkt").write_text("0 close(3)\n")
    report = tmp_path / "no" / "such" / "report.xml"
    result = run_ustack("conform", "--junit", str(report), str(script_directory))
    assert (result.returncode, result.stdout) == (2, "")  # no script ran
    assert result.stderr.splitlines() == [f"ustack conform: cannot write {report}: no directory {report.parent}"]


def test_fault_flags_read_naturally_and_map_onto_the_fault_injector():
    from ustack.commands.faults import faults_from_args
    from ustack.link.fault import Faults

    parser = cli.build_parser()

    def faults(*flags):
        return faults_from_args(parser.parse_args(["serve", *flags]))

    assert faults() is None  # no flag: no FaultInjector at all
    inbound, outbound = faults("--loss", "in:0.05,out:0.01", "--delay", "50/10", "--reorder", "0.1",
                               "--duplicate", "out:0.02", "--corrupt", "in:0.001", "--rate", "20mbit")
    assert inbound == Faults(drop=0.05, delay=0.050, jitter=0.010, reorder=0.1, corrupt=0.001,
                             rate_bytes_per_second=2_500_000.0)
    assert outbound == Faults(drop=0.01, delay=0.050, jitter=0.010, reorder=0.1, duplicate=0.02,
                              rate_bytes_per_second=2_500_000.0)
    # tc's units: bit words are bits per second, bps words BYTES per second; a bare suffix is bits.
    for text, bytes_per_second in [("1M", 125_000.0), ("500kbit", 62_500.0), ("1gbit", 125_000_000.0),
                                   ("2mbps", 2_000_000.0), ("8000", 1000.0), ("1.5Mbit", 187_500.0)]:
        assert faults("--rate", text)[0].rate_bytes_per_second == bytes_per_second, text
    assert faults("--delay", "out:100ms")[1].delay == 0.1 and faults("--delay", "out:100ms")[0] == Faults()
    assert faults("--loss", "0.2")[0].drop == faults("--loss", "0.2")[1].drop == 0.2


def test_timeout_0_means_no_time_limit_and_help_says_so():
    parser = cli.build_parser()
    assert parser.parse_args(["connect", "10.77.0.1", "80", "--timeout", "0"]).timeout == 0.0
    assert "0 means no time limit" in " ".join(parser.command_parsers["connect"].format_help().split())
    # (that it then connects, instead of giving up at once: tests/interop/test_cli_habits.py)


@pytest.mark.parametrize("flags, ecn", [([], "passive"), (["--ecn", "on"], "on"), (["--ecn", "off"], "off")])
def test_serve_ecn_sets_the_stacks_ecn_mode(flags, ecn):
    # TcpConfig.ecn (RFC 3168, tcp/ecn.py): passive agrees when a peer's SYN asks (Linux's default
    # tcp_ecn=2), on also asks on ustack's own SYNs, off never agrees.
    from ustack.commands.serve import serve_config

    args, unknown = cli.build_parser().parse_known_args(["serve", "--netns", "ust-x", *flags])
    assert not unknown
    assert serve_config(args).ecn == ecn
