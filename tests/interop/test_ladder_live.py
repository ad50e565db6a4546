"""`ustack serve --ladder` and `ustack connect --ladder` against the kernel: the ladder each prints
for a real connection, with ustack's exact states, and (with a seeded --loss) the lost arrows
and the retransmissions that follow them.

Each test runs in a fresh namespace ust-t-ladder-<pid>-<n> that is always removed; every process
is stopped by its PID; the pcap of a failed test is kept under test-artifacts/."""

from __future__ import annotations

import itertools
import os
import queue
import re
import select
import signal
import subprocess
from typing import NamedTuple

import pytest
from interop_helpers import (
    HOST_ADDRESS,
    IO_TIMEOUT,
    STACK_ADDRESS,
    ServeProcess,
    opened_namespace,
    run_cli,
    serve_starter,
    wait_for_kernel_listener,
)

from ustack.netns import namespace_exists
from ustack.trace.render_text import ARROW_WIDTH, STATE_WIDTH, TIME_WIDTH

NC_PORT = 5000
LEGEND = "--->  segment"
# With --loss 0.2, seed 3521 drops the first packet of each direction (the kernel's SYN, then our
# SYN-ACK to its resent SYN) and none of the next eleven: the same two losses on every run.
LOSS, SEED = "0.2", "3521"
_numbers = itertools.count()


def ladder_namespace() -> str:
    return f"ust-t-ladder-{os.getpid()}-{next(_numbers)}"


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>served by ustack</h1>\n")
    return root


@pytest.fixture
def ladder_serve(require_interop_environment, run_directory, interop_pcap):
    """start(*arguments) -> a ready `ustack serve --netns ust-t-ladder-... ARGUMENTS` process."""
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory), "NO_COLOR": "1"}
    yield from serve_starter(ladder_namespace, environment, interop_pcap)


@pytest.fixture
def ladder_namespace_made_here(require_interop_environment):
    """A namespace the test creates itself (for `ustack connect`, next to the kernel's nc)."""
    yield from opened_namespace(ladder_namespace())


def next_ladder(serve: ServeProcess, header: str) -> list[str]:
    """The lines of the next ladder serve prints, from its header line to its legend line."""
    serve.wait_for_line(header, timeout=IO_TIMEOUT)
    start = len(serve.output) - 1
    serve.wait_for_line(LEGEND, timeout=IO_TIMEOUT)
    return serve.output[start:]


def rest_of_output(serve: ServeProcess) -> list[str]:
    """Everything serve printed until it exited (call after stop())."""
    while True:
        try:
            line = serve.lines.get(timeout=IO_TIMEOUT)
        except queue.Empty:
            raise AssertionError("serve's output did not end") from None
        if line is None:
            return serve.output
        serve.output.append(line)


def left_states(ladder: list[str]) -> list[str]:
    """ustack's column: the states written in it, in order."""
    states = []
    for line in ladder:
        if re.fullmatch(r"\s*\d+\.\d+", line[:TIME_WIDTH]):
            state = line[TIME_WIDTH + 1:TIME_WIDTH + 1 + STATE_WIDTH].strip()
            if state:
                states.append(state)
    return states


class Drawn(NamedTuple):
    """One arrow as the text shows it."""

    direction: str  # ">" ustack to the kernel, "<" the kernel to ustack
    kind: str  # "normal", "retransmission", "duplicate", "lost"
    label: str  # '[S.] seq 0 ack 1 win 65535 len 0'


def drawn_arrows(ladder: list[str]) -> list[Drawn]:
    """The arrows of a text ladder, read back: shaft, direction, and the label on or above it."""
    arrows, label_pieces = [], []
    middle_start = TIME_WIDTH + 1 + STATE_WIDTH + 2
    for line in ladder:
        middle = line[middle_start:middle_start + ARROW_WIDTH]
        timed = bool(re.fullmatch(r"\s*\d+\.\d+", line[:TIME_WIDTH]))
        shaft = re.search(r"[-=~]{3,}", middle)
        if timed and shaft:
            from_left = middle.lstrip()[0] in "-=~"
            kind = {"=": "retransmission", "~": "duplicate"}.get(shaft.group()[0], "normal")
            if "X" in middle:
                kind = "lost"
            on_shaft = re.search(r"\[.*?len \d+", middle)
            label = on_shaft.group() if on_shaft else " ".join(label_pieces)
            arrows.append(Drawn(">" if from_left else "<", kind, label))
            label_pieces = []
        elif not timed and middle.strip().startswith("["):
            label_pieces = [middle.strip()]  # a label too long for its shaft, written above it
        elif not timed and label_pieces and not middle.strip().startswith(("<", "(")):
            label_pieces.append(middle.strip())
    return arrows


def matching(arrows: list[Drawn], direction: str, pattern: str, kind: str | None = None) -> list[Drawn]:
    return [arrow for arrow in arrows if arrow.direction == direction and re.fullmatch(pattern, arrow.label)
            and (kind is None or arrow.kind == kind)]


def test_serve_ladder_of_a_curl_request(ladder_serve, site):
    serve = ladder_serve("--http", str(site), "--ladder", "--msl", "1")
    page = serve.inside("curl", "-sS", "--fail", "-H", "Connection: close", f"http://{STACK_ADDRESS}/")
    assert page.returncode == 0, page.stderr
    assert page.stdout == "<h1>served by ustack</h1>\n"
    # Printed by itself once the connection is over: after TIME-WAIT (2 MSL = 2 s).
    ladder = next_ladder(serve, f"{STACK_ADDRESS}:80 (ustack) <-> {HOST_ADDRESS}:")
    text = "\n".join(ladder)
    arrows = drawn_arrows(ladder)
    assert [arrow.kind for arrow in arrows] == ["normal"] * len(arrows), text
    assert matching(arrows, "<", r"\[S\] seq \d+ win \d+ len 0") == [arrows[0]], text
    assert matching(arrows, ">", r"\[S\.\] seq \d+ ack \d+ win \d+ len 0") == [arrows[1]], text
    assert matching(arrows, "<", r"\[P\.\] seq \d+:\d+ ack \d+ win \d+ len 92"), text  # the GET
    assert matching(arrows, ">", r"\[FP\.\] seq \d+:\d+ ack \d+ win \d+ len [1-9]\d*"), text  # page + FIN
    assert matching(arrows, "<", r"\[F\.\] seq \d+ ack \d+ win \d+ len 0"), text  # the kernel's FIN
    states = left_states(ladder)
    assert states[:3] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"], states
    assert states[-2:] == ["TIME-WAIT", "CLOSED"], states
    assert "FIN-WAIT-1" in states and not any(state.endswith("*") for state in states), states

    assert serve.stop() == 0
    output = rest_of_output(serve)
    assert output[-1] == "ustack: stopped"
    assert sum(line.startswith(f"{STACK_ADDRESS}:80 (ustack)") for line in output) == 1
    assert not namespace_exists(serve.namespace)


def test_serve_ladder_with_seeded_loss_shows_lost_arrows_and_resends(ladder_serve, site):
    serve = ladder_serve("--http", str(site), "--ladder", "--msl", "1", "--loss", LOSS, "--seed", SEED,
                         "--relative")
    page = serve.inside("curl", "-sS", "--fail", "-H", "Connection: close", f"http://{STACK_ADDRESS}/")
    assert page.returncode == 0, page.stderr
    ladder = next_ladder(serve, f"{STACK_ADDRESS}:80 (ustack) <-> {HOST_ADDRESS}:")
    text = "\n".join(ladder)
    arrows = drawn_arrows(ladder)
    lost = [arrow for arrow in arrows if arrow.kind == "lost"]
    assert len(lost) == 2, text
    assert matching(lost, "<", r"\[S\] seq 0 win \d+ len 0") == [lost[0]], text  # the kernel's SYN
    assert matching(lost, ">", r"\[S\.\] seq 0 ack 1 win \d+ len 0") == [lost[1]], text  # our SYN-ACK
    assert text.count("(dropped by --loss)") == 2, text
    # Each loss is followed by a resend of the same segment, drawn as a retransmission.
    assert matching(arrows, "<", r"\[S\] seq 0 win \d+ len 0", "retransmission"), text
    assert matching(arrows, ">", r"\[S\.\] seq 0 ack 1 win \d+ len 0", "retransmission"), text
    assert "(retransmission 1, +" in text
    states = left_states(ladder)
    assert states[:3] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"] and states[-1] == "CLOSED", states
    assert "sequence numbers relative" in text
    assert serve.stop() == 0
    assert not namespace_exists(serve.namespace)


def test_serve_ladder_port_filter_and_sigterm_with_a_connection_open(ladder_serve, site):
    serve = ladder_serve("--http", str(site), "--echo", "--ladder", "7", "--msl", "1")
    page = serve.inside("curl", "-sS", "--fail", "-H", "Connection: close", f"http://{STACK_ADDRESS}/")
    assert page.returncode == 0, page.stderr
    echo = subprocess.Popen(["ip", "netns", "exec", serve.namespace, "nc", STACK_ADDRESS, "7"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        echo.stdin.write(b"hello ladder\n")
        echo.stdin.flush()
        readable, _, _ = select.select([echo.stdout], [], [], IO_TIMEOUT)
        assert readable and echo.stdout.readline() == b"hello ladder\n"
        # The echo connection is open (ESTABLISHED) when ustack is told to stop.
        assert serve.stop() == 0
    finally:
        if echo.poll() is None:
            echo.send_signal(signal.SIGTERM)
        echo.wait(timeout=IO_TIMEOUT)
    output = rest_of_output(serve)
    headers = [line for line in output if " (ustack) <-> " in line]
    assert len(headers) == 1 and headers[0].startswith(f"{STACK_ADDRESS}:7 (ustack) <-> "), output
    ladder = output[output.index(headers[0]):]
    assert left_states(ladder) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"], ladder
    assert "(ustack stopped while this connection was in ESTABLISHED)" in ladder
    arrows = drawn_arrows(ladder)
    for direction in "<>":  # the line, and its echo
        assert matching(arrows, direction, r"\[P\.\] seq \d+:\d+ ack \d+ win \d+ len 13"), ladder
    assert not any("[R" in arrow.label for arrow in arrows)  # drawn before the shutdown's abort
    assert output[-1] == "ustack: stopped"
    assert not namespace_exists(serve.namespace)


def test_connect_ladder_to_kernel_nc(ladder_namespace_made_here, tmp_path, interop_pcap):
    namespace = ladder_namespace_made_here
    to_send = tmp_path / "from-kernel.txt"
    to_send.write_bytes(b"hello from the kernel\n")
    received = tmp_path / "received.txt"
    with to_send.open("rb") as stdin, received.open("wb") as stdout:
        server = namespace.popen(["nc", "-4", "-N", "-l", str(NC_PORT)], stdin=stdin, stdout=stdout,
                                 stderr=subprocess.PIPE)
    wait_for_kernel_listener(namespace.name, NC_PORT)
    result = run_cli("connect", "--netns", namespace.name, "--pcap", str(interop_pcap), "--msl", "1",
                     HOST_ADDRESS, str(NC_PORT), "--ladder", input="hello from ustack\n",
                     environment={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the kernel\n"  # stdout stays the data; the ladder is on stderr
    assert server.wait(timeout=IO_TIMEOUT) == 0
    assert received.read_bytes() == b"hello from ustack\n"

    ladder = result.stderr.splitlines()
    text = result.stderr
    assert re.match(rf"{STACK_ADDRESS}:\d+ \(ustack\) <-> {HOST_ADDRESS}:{NC_PORT} \(kernel\)", ladder[1]), text
    arrows = drawn_arrows(ladder)
    assert matching(arrows, ">", r"\[S\] seq \d+ win \d+ len 0") == [arrows[0]], text
    assert matching(arrows, "<", r"\[S\.\] seq \d+ ack \d+ win \d+ len 0") == [arrows[1]], text
    assert matching(arrows, ">", r"\[F?P\.\] seq \d+:\d+ ack \d+ win \d+ len 18"), text
    assert matching(arrows, "<", r"\[F?P\.\] seq \d+:\d+ ack \d+ win \d+ len 22"), text
    for direction in "<>":
        assert matching(arrows, direction, r"\[FP?\.\] .*"), text  # each side's FIN
    states = left_states(ladder)
    assert states[:3] == ["CLOSED", "SYN-SENT", "ESTABLISHED"], states
    # Whoever closed first, ustack went through the close to its end (or to TIME-WAIT, where
    # the command stops waiting, and says so).
    assert ("FIN-WAIT-1" in states or "CLOSE-WAIT" in states) and states[-1] in ("TIME-WAIT", "CLOSED"), states
    if states[-1] == "TIME-WAIT":
        assert "(ustack stopped while this connection was in TIME-WAIT)" in text
