"""Ctrl-C, SIGTERM and a device name already taken, at the moments a user meets them: ustack
ends promptly, says at most one line, and leaves nothing behind (and nothing of someone else's
changed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from interop_helpers import RUN_CLI, run_cli, wait_for

from ustack import netns
from ustack.netns import Namespace, namespace_exists

UNANSWERED_ADDRESS = "10.77.0.5"  # on the kernel's /24 but nobody's: a SYN to it goes unanswered


def test_ctrl_c_while_connecting_ends_at_once_and_removes_the_namespace(require_interop_environment, namespace_name,
                                                                        run_directory):
    name = namespace_name()
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}
    connect = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "connect", "--netns", name, "--timeout", "120", UNANSWERED_ADDRESS, "80"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        def syn_sent() -> bool:
            result = run_cli("ss", "--json", "--state", "syn-sent", environment=environment)
            return any(entry["pid"] == connect.pid for entry in json.loads(result.stdout or "[]"))

        wait_for(syn_sent, 30, "ustack connect in SYN-SENT")
        connect.send_signal(signal.SIGINT)
        # Well before the 120 s connection timeout: Ctrl-C must not wait for it.
        _, errors = connect.communicate(timeout=20)
    finally:
        if connect.poll() is None:
            connect.kill()
            connect.wait()
        if namespace_exists(name):
            subprocess.run(["ip", "netns", "del", name], check=False)
            pytest.fail(f"ustack connect left namespace {name} behind")
    assert (connect.returncode, errors) == (130, "")


def test_a_tun_name_already_in_use_is_refused_and_the_device_left_as_it_was(namespace):
    # A persistent TUN device made by someone else (`ip tuntap add`): without IFF_TUN_EXCL the
    # kernel would let ustack attach to it, readdress it and leave it changed.
    made = namespace.run(["ip", "tuntap", "add", "dev", "ustbusy0", "mode", "tun"])
    assert made.returncode == 0, made.stderr
    result = run_cli("serve", "--netns", namespace.name, "--tun", "ustbusy0", "--echo", timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"ustack serve: cannot create TUN ustbusy0: a network device named 'ustbusy0' already exists in namespace "
        f"{namespace.name} (another ustack? choose another name)"]
    device = namespace.run(["ip", "-o", "addr", "show", "dev", "ustbusy0"])
    assert device.returncode == 0 and "inet " not in device.stdout, device.stdout  # untouched
    assert namespace_exists(namespace.name)  # not ours to remove


class InterruptedWhileClosing:
    """A link whose close() is where Ctrl-C happens to arrive."""

    closed = False

    def close(self) -> None:
        self.closed = True
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_during_namespace_close_waits_until_the_namespace_is_gone(require_interop_environment,
                                                                         namespace_name):
    name = namespace_name()
    space = Namespace(name).open()
    sleeper = space.popen(["sleep", "600"])
    link = InterruptedWhileClosing()
    space.own_link(link)
    try:
        with pytest.raises(KeyboardInterrupt):  # still delivered, once everything is done
            space.close()
        assert link.closed and sleeper.poll() is not None
        assert not namespace_exists(name)
    finally:
        if namespace_exists(name):
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_signals_held_delivers_each_signal_afterwards_and_restores_the_handlers():
    received = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    try:
        with netns.signals_held():
            signal.raise_signal(signal.SIGTERM)
            assert received == []  # noted, not acted on yet
        assert received == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            with netns.signals_held():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)  # twice in the block: acted on once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_serve_stops_cleanly_when_the_reader_of_its_output_goes_away(require_interop_environment, namespace_name,
                                                                     run_directory):
    # `ustack serve --trace | head`: once head has its lines and exits, the next packet's trace
    # line meets a closed pipe. serve must then stop through its cleanup (as SIGPIPE would stop
    # it, but with the namespace removed), not print a traceback for every packet.
    name = namespace_name()
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}
    serve = subprocess.Popen([sys.executable, "-c", RUN_CLI, "serve", "--netns", name, "--echo", "--trace"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        for line in serve.stdout:
            if line.startswith("ustack: ready"):
                break
        serve.stdout.close()  # the reader goes away
        serve.stdout = None  # (for communicate())
        subprocess.run(["ip", "netns", "exec", name, "nc", "-N", "-w", "5", "10.77.0.2", "7"], input="hi\n",
                       capture_output=True, text=True, timeout=30)
        _, errors = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if namespace_exists(name):
            subprocess.run(["ip", "netns", "del", name], check=False)
            pytest.fail(f"ustack serve left namespace {name} behind")
    assert (serve.returncode, errors) == (0, "")
