"""Run one script: parse, check what it needs, drive ustack, and say pass, fail or skipped.

    result = run_path("snippets/listen-ipv4.pkt")
    result.status     # "pass", "fail", "skipped" or "error" (the script could not be parsed)
    result.reason     # one line: the unsupported feature, the first mismatch, the parse error
    result.mismatch   # for a failed packet: expected and actual segment in tcpdump form

A script is skipped, before anything runs, when it needs a feature ustack lacks: `find_unsupported`
walks every event and asks the profile (sysctls, headers, socket options) and the shell/code
interpreters, so the reason names the first such feature. The virtual-time driver (driver.py) runs
the rest against ustack's host (stack.py); what a driver run can still find unsupported (a socket option set
after connect, say) also ends as "skipped".
"""

from __future__ import annotations

from pathlib import Path

from ustack.conform.driver import ECN_FIELDS, drive
from ustack.conform.lexer import ParseError
from ustack.conform.parser import parse_file
from ustack.conform.profile import DEFINES, FREEBSD, LINUX, SOCKET_OPTIONS, Unsupported, apply_script_options, apply_sysctl
from ustack.conform.result import ERROR, FAIL, PASS, SKIPPED, Result
from ustack.conform.script import CodeEvent, NameExpr, PacketEvent, Script, ShellEvent, SyscallEvent
from ustack.conform.linux_profile import apply_linux_sysctl
from ustack.conform.matcher import fast_open_cookie
from ustack.conform.tcp_info import check_code_block
from ustack.conform.shell import LinuxSysctls, SetSysctl, interpret_code, interpret_shell

__all__ = ["ERROR", "FAIL", "PASS", "SKIPPED", "Result", "find_unsupported", "run_path", "run_script"]

# The system calls the emulation (syscalls.py) knows.
SUPPORTED_SYSCALLS = frozenset(
    {"socket", "bind", "listen", "accept", "connect", "read", "write", "send", "recv", "close", "shutdown",
     "fcntl", "getsockopt", "setsockopt", "poll",
     # Linux only (linux_calls.py)
     "sendto", "recvfrom", "sendmsg", "recvmsg", "ioctl", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait"}
)


def find_unsupported(script: Script, profile: str = FREEBSD) -> tuple[Unsupported, int | None] | None:
    """The first thing in `script` that ustack cannot do, with its line; None if there is none."""
    overrides: dict = {}
    try:
        apply_script_options(script.options, overrides)
    except Unsupported as problem:
        return problem, None
    for event in script.events:
        try:
            _check_event(event, overrides, profile)
        except Unsupported as problem:
            return problem, event.line
    return None


def _check_event(event, overrides: dict, profile: str = FREEBSD) -> None:
    if isinstance(event, ShellEvent):
        action = interpret_shell(event.command)
        if isinstance(action, SetSysctl):
            apply_sysctl(action.name, action.value, overrides)
        elif isinstance(action, LinuxSysctls):
            for name, value in action.settings:
                apply_linux_sysctl(name, value, overrides)
    elif isinstance(event, CodeEvent):
        if profile == LINUX:  # Python against TCP_INFO (tcp_info.py)
            check_code_block(event.code)
        else:
            interpret_code(event.code)
    elif isinstance(event, PacketEvent):
        _check_packet(event)
    elif isinstance(event, SyscallEvent):
        _check_syscall(event)


def _check_packet(event: PacketEvent) -> None:
    if event.icmp is not None and event.direction == ">":
        raise Unsupported("outbound_icmp", "ustack is not expected to send ICMP to the script")
    if event.udp_ports is not None:
        raise Unsupported("udp_encapsulation", "TCP over UDP")
    if any(name not in ECN_FIELDS for name, _ in event.ip_info):
        names = ",".join(name for name, _ in event.ip_info)
        raise Unsupported("ip_header_fields", f"the driver sets and checks only the ECN field of IP headers ({names})")
    if any(option.name == "md5" for option in event.options or ()):
        raise Unsupported("tcp_md5", "TCP MD5 signature option (RFC 2385)")
    for option in event.options or ():
        if option.name in ("FO", "FOEXP"):
            fast_open_cookie(option)  # a cookie by a name the profile does not know: skipped


def _check_syscall(event: SyscallEvent) -> None:
    if event.name not in SUPPORTED_SYSCALLS:
        raise Unsupported(f"syscall {event.name}", "not in syscalls.py")
    if event.name in ("getsockopt", "setsockopt") and len(event.args) >= 3:
        option = event.args[2]
        if not isinstance(option, NameExpr) or option.name not in SOCKET_OPTIONS:
            name = option.name if isinstance(option, NameExpr) else str(option)
            raise Unsupported(f"socket option {name}", "not in profile.SOCKET_OPTIONS")


def run_script(script: Script, profile: str = FREEBSD) -> Result:
    """Run a parsed script with the FREEBSD or LINUX profile (profile.py, linux_profile.py).
    Unsupported features make it "skipped" without running anything."""
    found = find_unsupported(script, profile)
    if found is not None:
        problem, line = found
        return Result(script.path, SKIPPED, str(problem), line, key=problem.feature)
    return drive(script, linux=profile == LINUX)


def run_path(path: str | Path, defines: frozenset[str] = DEFINES, profile: str = FREEBSD) -> Result:
    """Parse and run one file; a parse error is a result ("error"), not an exception."""
    try:
        script = parse_file(path, defines)
    except ParseError as error:
        return Result(str(path), ERROR, error.message, error.line, key=f"line {error.line} parse")
    return run_script(script, profile)
