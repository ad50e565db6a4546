"""What the scripts' shell lines and `%{ }%` blocks mean to ustack.

ustack runs no shell: each backquoted command the suite uses is recognised and turned into an
action the runner performs on ustack itself, and anything else is reported as unsupported (never
silently ignored). The forms, surveyed from the 578 scripts:

    sysctl -w net.inet.tcp.sack.enable=1                               -> SetSysctl
    sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1 -> CountStates (-6 alike:
                                                                    the host holds one family)
    sockstat -4 -P tcp -p 8080 -s | grep -c SYN_RCVD | grep 0        -> CountStates (one port)
    tcpdrop -s TIME_WAIT            (only in `#ifdef FreeBSD` branches) -> DropTimeWait
    kldload tcpmd5 ... | setkey -c, setkey -F (the MD5 scripts)       -> unsupported

and the code blocks:

    assert tcpi_state == TCPI_CLOSE_WAIT                               -> AssertState
    assert tcpi_options == 0
    assert tcpi_options == (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | ...)  -> AssertOptions
"""

from __future__ import annotations

import re
import shlex
from typing import NamedTuple

from ustack.conform.linux_profile import LINUX_SHELL_NOOPS
from ustack.conform.profile import Unsupported
from ustack.tcp.state import State


class SetSysctl(NamedTuple):
    name: str
    value: int


class CountStates(NamedTuple):
    """sockstat | grep -c STATE | grep N: exactly `count` connections are in `state`."""

    state: State
    count: int
    port: int | None  # only connections with this local port (sockstat -p)


class DropTimeWait(NamedTuple):
    """tcpdrop -s TIME_WAIT: forget every connection in TIME-WAIT."""


class AssertState(NamedTuple):
    state: State


class AssertOptions(NamedTuple):
    """tcpi_options: which options the connection negotiated, as FreeBSD's TCPI_OPT_* bits."""

    bits: int


# FreeBSD's sockstat and tcp_info state names -> ustack's State. FreeBSD spells them as the enum's
# member names (SYN_SENT, TIME_WAIT), and sockstat also as SYN_RCVD.
FREEBSD_STATE_NAMES = {state.name: state for state in State} | {"SYN_RCVD": State.SYN_RECEIVED}

# FreeBSD's netinet/tcp.h values of tcpi_options.
TCPI_OPTION_BITS = {
    "TCPI_OPT_TIMESTAMPS": 0x01,
    "TCPI_OPT_SACK": 0x02,
    "TCPI_OPT_WSCALE": 0x04,
    "TCPI_OPT_ECN": 0x08,
    "TCPI_OPT_TOE": 0x10,
}

_SYSCTL = re.compile(r"^sysctl\s+-w\s+([A-Za-z0-9_.]+)=(\d+)$")
_SOCKSTAT = re.compile(
    r"^sockstat\s+-[46]\s+-P\s+tcp\s+(?:-p\s+(?P<port1>\d+)\s+)?-s(?:\s+-p\s+(?P<port2>\d+))?\s*"
    r"(?:\|\s*grep\s+packetdril\s*)?\|\s*grep\s+-c\s+(?P<state>[A-Z_0-9]+)\s*\|\s*grep\s+(?P<count>\d+)$"
)
_ASSERT_STATE = re.compile(r"^assert\s+tcpi_state\s*==\s*TCPI_([A-Z_0-9]+)$")
_ASSERT_OPTIONS = re.compile(r"^assert\s+tcpi_options\s*==\s*(.+)$")


class LinuxSysctls(NamedTuple):
    """A Linux script's set-up line: `../common/defaults.sh` (nothing to do: the Linux profile
    already is its result, linux_profile.LINUX_DEFAULTS), then any `sysctl -q NAME=VALUE` or
    `set_sysctls.py /proc/sys/NAME=VALUE` changes, in order, for linux_profile.apply_linux_sysctl;
    the suite's `/tmp/sysctl_restore_${PPID}.sh` at the end undoes them (nothing to do either)."""

    settings: tuple  # ((name, value text), ...)
    # `ip tcp_metrics flush all`: Linux keeps a client's Fast Open cookies (and the server's MSS)
    # among its per-destination metrics (tcp_metrics.c), so this forgets them.
    flush_metrics: bool = False


_SUITE_SCRIPT = re.compile(r"^(\.\./)+common/(defaults\.sh|set_sysctls\.py)$")
_RESTORE = "/tmp/sysctl_restore_${PPID}.sh"
_FLUSH_METRICS = ("ip", "tcp_metrics", "flush", "all")


def interpret_linux_shell(command: str) -> LinuxSysctls:
    """The sysctl changes of a Linux script's shell line, or Unsupported naming the first command
    ustack cannot follow (a qdisc, a route change, a module parameter...)."""
    try:
        words = shlex.split(command.replace("\\\n", " "), comments=True)
    except ValueError as error:
        raise Unsupported("shell command", f"cannot split {command.strip()[:40]!r}: {error}") from None
    settings = []
    flush = False
    index = 0
    while index < len(words):
        word = words[index]
        if word == _RESTORE or (_SUITE_SCRIPT.match(word) and word.endswith("defaults.sh")):
            index += 1
        elif word == "sysctl" or _SUITE_SCRIPT.match(word):
            index += 1
            while index < len(words) and (words[index].startswith("-") or "=" in words[index]):
                if "=" in words[index]:
                    name, value = words[index].split("=", 1)
                    settings.append((name.removeprefix("/proc/sys/").replace("/", "."), value))
                index += 1
        else:
            end = next((later for later in range(index + 1, len(words)) if _starts_command(words[later])), len(words))
            noop = tuple(word for word in words[index:end] if not word.startswith(">") and word not in ("2>&1",))
            noop = tuple(word for word in noop if word != "/dev/null")
            if noop == _FLUSH_METRICS:
                flush = True
            elif noop not in LINUX_SHELL_NOOPS:
                raise Unsupported("shell command", " ".join(words[index:end])[:60])
            index = end
    return LinuxSysctls(tuple(settings), flush)


def _starts_command(word: str) -> bool:
    return word in ("sysctl", "tc", "ip", "ethtool", "nstat", "echo", _RESTORE) or bool(_SUITE_SCRIPT.match(word))


def interpret_shell(command: str):
    """The action for one backquoted command, or Unsupported naming it."""
    text = " ".join(command.split())
    match = _SYSCTL.match(text)
    if match:
        return SetSysctl(match.group(1), int(match.group(2)))
    match = _SOCKSTAT.match(text)
    if match:
        state = FREEBSD_STATE_NAMES.get(match.group("state"))
        if state is None:
            raise Unsupported("shell command", f"unknown sockstat state {match.group('state')!r}")
        port = match.group("port1") or match.group("port2")
        return CountStates(state, int(match.group("count")), int(port) if port else None)
    if text == "tcpdrop -s TIME_WAIT":
        return DropTimeWait()
    if "setkey" in text or "tcpmd5" in text:
        raise Unsupported("tcp_md5", "TCP MD5 signature keys (RFC 2385)")
    return interpret_linux_shell(command)


def interpret_code(code: str):
    """The check for one `%{ }%` block, or Unsupported."""
    text = " ".join(code.split())
    match = _ASSERT_STATE.match(text)
    if match:
        state = FREEBSD_STATE_NAMES.get(match.group(1))
        if state is None:
            raise Unsupported("code block", f"unknown state TCPI_{match.group(1)}")
        return AssertState(state)
    match = _ASSERT_OPTIONS.match(text)
    if match:
        return AssertOptions(_option_bits(match.group(1)))
    raise Unsupported("code block", text[:60])


def _option_bits(expression: str) -> int:
    """`0`, `(TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK)`: an OR of known names and numbers."""
    bits = 0
    for term in expression.strip().strip("()").split("|"):
        term = term.strip()
        if term.isdigit():
            bits |= int(term)
        elif term in TCPI_OPTION_BITS:
            bits |= TCPI_OPTION_BITS[term]
        else:
            raise Unsupported("code block", f"unknown tcpi_options term {term!r}")
    return bits
