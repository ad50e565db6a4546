"""The FreeBSD profile: every way the conformance runner bends ustack toward the reference stack.
(Google's Linux scripts get the Linux profile instead: linux_profile.py, built the same way.)

The FreeBSD tcp-testsuite assumes FreeBSD's defaults and sets them with `sysctl -w` lines. This
file is the ONE documented place that says

  * FREEBSD_DEFAULTS: the TcpConfig values that make ustack start out like FreeBSD;
  * SYSCTLS: every sysctl the suite writes, what FreeBSD does with it, and what it sets in
    ustack's TcpConfig, or why it is accepted without a change, or why it is unsupported;
  * SCRIPT_OPTIONS: the `--name=value` headers;
  * TOLERANCES: every place where the matcher deliberately compares less than packetdrill would,
    with the reason; SCRIPT_TOLERANCES: the few that apply to one script only;
  * FREEBSD_RECEIVE_BUFFER_ROUNDING: the one socket-layer quirk the scripts check;
  * FREEBSD_DEVIATIONS: the scripts that encode FreeBSD behaviour contradicting RFC 9293, which
    ustack does not copy, with the RFC section (tests/conform/expected.txt quotes them).

Every FreeBSD behaviour that ustack can adopt is a TcpConfig knob with an RFC-following default
(config.py documents each); the profile only selects values. The knobs the FreeBSD defaults
select: window_scale_shift 6 (kern.ipc.maxsockbuf), window_advertisement "free_space" (BSD's
tcp_output), rto_slop/min_rto/max_rto/syn_retries (BSD's retransmission timer), connect_timeout
(keepinit), rfc1337 (tcp_twcheck ignores RSTs), time_wait_reopen_without_timestamps off (the
STANDARD branches follow RFC 9293 3.10.7.4).

Surveyed from the 578 scripts (grep -rho 'sysctl -w [a-z_.0-9]*=[0-9]*' | sort | uniq -c):
  net.inet.tcp.recvspace=65536 (574)  sack.enable=1 (574) / =0 (4)  rfc1323=1 (357) / =0 (4)
  hostcache.purgenow=1 (576)  ecn.enable=2 (358) / =1 (5)  blackhole=0 (357)
  kern.ipc.maxsockbuf=2097152 (357) / 73728 / 4294967295  sendspace=32768 (355)
  insecure_rst=0 (147) / =1 (72)  insecure_syn=0 (83) / =1 (40)  rexmit_drop_options=0 (50) / =1
  rexmit_slop=200 (48)  rexmit_initial=1000 (41)  drop_synfin=0 (24) / =1 (12)  delacktime=40 (20)
  keepinit=75000 (12) / 15000  icmp_may_rst=1 (7) / =0  keepidle/keepintvl/keepcnt (3 each)
  syncookies=1, syncookies_only=0, ecn.maxretries, udp_tunneling_port/overhead (3 each)
  tolerate_missing_ts=0 (1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from ustack.tcp.config import TcpConfig


class Unsupported(Exception):
    """A script needs something ustack cannot do (or cannot be configured to do) yet.

    `feature` is a short stable name used in reports and in tests/conform/expected.txt.
    """

    def __init__(self, feature: str, detail: str = "") -> None:
        super().__init__(f"{feature}: {detail}" if detail else feature)
        self.feature = feature
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# The starting point: FreeBSD's defaults as TcpConfig values


# tcp_ctlinput with icmp_may_rst=1: protocol and port unreachable, and the administratively
# prohibited codes (net 9, host 10, communication 13), refuse a connection in SYN-SENT.
FREEBSD_ICMP_HARD_ERRORS = frozenset({2, 3, 9, 10, 13})

FREEBSD_DEFAULTS = {
    "mss": 1460,  # the scripts' interface MTU is 1500
    "receive_buffer_size": 65536,  # net.inet.tcp.recvspace; see FREEBSD_RECEIVE_BUFFER_ROUNDING
    "send_buffer_size": 32768,  # net.inet.tcp.sendspace
    "window_scaling": True,  # net.inet.tcp.rfc1323=1
    "timestamps": True,  # net.inet.tcp.rfc1323=1
    "sack": True,  # net.inet.tcp.sack.enable=1
    "congestion_control": "newreno",  # net.inet.tcp.cc.algorithm: the scripts' cwnd arithmetic is NewReno's
    "nagle_minshall": False,  # tcp_output's Nagle is RFC 896's: no short segment while data is in flight
    "initial_rto": 1.0,  # net.inet.tcp.rexmit_initial=1000 (ms)
    "rto_slop": 0.2,  # net.inet.tcp.rexmit_slop=200 (ms), added on top of every RTO after the first
    "min_rto": 0.03,  # net.inet.tcp.rexmit_min=30 (ms)
    "max_rto": 64.0,  # TCPTV_REXMTMAX
    "syn_retries": 12,  # TCP_MAXRXTSHIFT: 12 retransmissions, then the connection is dropped
    "connect_timeout": 75.0,  # net.inet.tcp.keepinit=75000 (ms): the TT_KEEP timer of SYN-SENT
    "max_retransmissions": 12,  # TCP_MAXRXTSHIFT
    "delayed_ack_timeout": 0.04,  # net.inet.tcp.delacktime=40 (ms)
    "msl": 30.0,  # net.inet.tcp.msl=30000 (ms)
    "keepalive_idle": 7200.0,  # net.inet.tcp.keepidle=7200000 (ms)
    "keepalive_interval": 75.0,  # net.inet.tcp.keepintvl=75000 (ms)
    "keepalive_probes": 8,  # net.inet.tcp.keepcnt=8
    "window_scale_shift": 6,  # kern.ipc.maxsockbuf=2097152 (see window_shift_for_limit)
    # tcp_output advertises all the free receive space on every segment, zero below
    # min(buffer/4, MSS); ustack's default moves the edge in min(buffer/2, MSS) steps. After a
    # read it sends a window update once the window can grow by two segments and a quarter of
    # the buffer, or by half of it (rcv-data-segments/overlapping-200-32200.pkt checks it).
    # RCV.WND is then all the free space, 65700 bytes, though the field says 65535: the
    # state-event-engine scripts send their "right edge" RSTs and SYNs at RCV.NXT + 65699.
    "window_advertisement": "free_space",
    # FreeBSD reports a duplicate arrival in a D-SACK block (RFC 2883), the lowest duplicate run
    # of the segment when it repeats several; rcv-data-segments/overlapping-* check it. This is
    # also ustack's default; it is listed so that the profile does not depend on that default.
    "dsack": True,
    # Not FreeBSD's behaviour but the STANDARD branches': a SYN in TIME-WAIT reopens only with
    # timestamps (RFC 9293 3.10.7.4); otherwise RFC 5961 4 (challenge ACK) applies. FreeBSD, like
    # Linux, also reopens on the sequence number alone (its `#ifdef FreeBSD` branches).
    "time_wait_reopen_without_timestamps": False,
    # tcp_twcheck drops every RST in TIME-WAIT (RFC 1337 fix F1); the scripts check it.
    "rfc1337": True,
    "icmp_hard_error_codes": FREEBSD_ICMP_HARD_ERRORS,  # net.inet.tcp.icmp_may_rst=1
    # FreeBSD's default TCP stack finds losses by duplicate ACKs and SACK (RFC 6675) and sends
    # no tail loss probes (RACK-TLP lives in its optional "rack" stack, net.inet.tcp.functions_default).
    "loss_detection": "dupack",
    "ecn": "passive",  # net.inet.tcp.ecn.enable=2
    "ecn_syn_retries": 1,  # net.inet.tcp.ecn.maxretries=1
    "pacing": False,  # FreeBSD's default stack does not pace (its rack and bbr stacks do)
}
# A value whose field TcpConfig does not have (yet) is not applied; every result lists it among
# its warnings ("profile value ... not applied").


def window_shift_for_limit(limit: int) -> int:
    """FreeBSD's choice of window scale: the smallest shift with 65535 << shift >= the largest
    socket buffer (kern.ipc.maxsockbuf), at most 14 (RFC 7323 2.3). 2 MiB gives 6."""
    shift = 0
    while shift < 14 and (0xFFFF << shift) < limit:
        shift += 1
    return shift


# FreeBSD raises a socket's receive buffer to a whole number of MSS-sized segments when the
# connection's MSS is known: with recvspace 65536 and MSS 1460 the buffer becomes 45 * 1460 =
# 65700 bytes, and the scripts check it (`getsockopt(SO_RCVBUF) == 65700` after the handshake,
# and advertised windows such as `win 64901` = 65700 - 799 unread bytes). The runner gives the
# core the rounded size, and the socket emulation reports the unrounded value until the
# connection is established, as FreeBSD does.
FREEBSD_RECEIVE_BUFFER_ROUNDING = True


def freebsd_receive_buffer(recvspace: int, mss: int) -> int:
    """recvspace rounded up to a multiple of the MSS (FreeBSD tcp_mss_update)."""
    return -(-recvspace // mss) * mss


# The `#ifdef` branches of the scripts that run: ustack follows the RFCs, not FreeBSD's
# deliberate deviations (for example a SYN in TIME-WAIT, RFC 9293 3.10.7.4 / RFC 5961 4).
DEFINES = frozenset({"STANDARD"})

# The two suites, and the profile each is run with. The FreeBSD tcp-testsuite (this module's
# SYSCTLS, FREEBSD_DEFAULTS, `#ifdef STANDARD`) and Google's packetdrill scripts for Linux (written
# for the Linux kernel: net.ipv4 sysctls through their defaults.sh, Linux constants
# (kernel_syscalls.LINUX_CONSTANTS), no #ifdef branches). A script belongs to the FreeBSD suite
# when its path says so; every other script is taken as a Linux one.
FREEBSD = "freebsd"
LINUX = "linux"
PROFILE_DEFINES = {FREEBSD: DEFINES, LINUX: frozenset()}


# The FreeBSD suite's sysctls as Linux commands, for running it against the Linux kernel
# (`ustack drill --against kernel`): FreeBSD name -> function(value) -> shell command. A FreeBSD
# sysctl missing here makes the script "skipped" there: Linux has no such setting.
FREEBSD_SYSCTLS_ON_LINUX = {
    "net.inet.tcp.rfc1323": lambda value: f"sysctl -q -w net.ipv4.tcp_timestamps={value} "
                                          f"net.ipv4.tcp_window_scaling={value}",
    "net.inet.tcp.sack.enable": lambda value: f"sysctl -q -w net.ipv4.tcp_sack={value}",
    "net.inet.tcp.ecn.enable": lambda value: f"sysctl -q -w net.ipv4.tcp_ecn={value}",
    "net.inet.tcp.hostcache.purgenow": lambda value: "ip tcp_metrics flush all",
    "net.inet.tcp.keepidle": lambda value: f"sysctl -q -w net.ipv4.tcp_keepalive_time={max(1, value // 1000)}",
    "net.inet.tcp.keepintvl": lambda value: f"sysctl -q -w net.ipv4.tcp_keepalive_intvl={max(1, value // 1000)}",
    "net.inet.tcp.keepcnt": lambda value: f"sysctl -q -w net.ipv4.tcp_keepalive_probes={value}",
    "net.inet.tcp.recvspace": lambda value: f"sysctl -q -w net.ipv4.tcp_rmem='4096 {value} 6291456'",
    "net.inet.tcp.sendspace": lambda value: f"sysctl -q -w net.ipv4.tcp_wmem='4096 {value} 4194304'",
    "kern.ipc.maxsockbuf": lambda value: f"sysctl -q -w net.core.rmem_max={value} net.core.wmem_max={value}",
}


# FreeBSD settings whose value here is what Linux always does: nothing to run.
FREEBSD_SYSCTLS_LINUX_ALWAYS = {
    ("net.inet.tcp.blackhole", 0): "Linux answers segments to closed ports with a RST",
    ("net.inet.tcp.syncookies_only", 0): "Linux keeps a SYN queue and uses cookies only when it is full",
    ("net.inet.tcp.insecure_rst", 0): "Linux checks RSTs as RFC 5961 3 says",
    ("net.inet.tcp.insecure_syn", 0): "Linux answers an in-window SYN with a challenge ACK (RFC 5961 4)",
    ("net.inet.tcp.tolerate_missing_ts", 1): "Linux accepts segments without timestamps",
    ("net.inet.tcp.rexmit_initial", 1000): "Linux's initial RTO is 1 s (RFC 6298 2.1)",
    ("net.inet.tcp.rexmit_slop", 200): "Linux's RTO has a floor of 200 ms (TCP_RTO_MIN) where FreeBSD adds 200 ms",
    ("net.inet.tcp.rexmit_drop_options", 0): "Linux keeps the options on retransmitted SYNs",
    ("net.inet.tcp.delacktime", 40): "Linux's delayed ACK waits 40 ms at least (TCP_DELACK_MIN)",
    ("net.inet.tcp.drop_synfin", 1): "Linux drops a SYN with FIN in LISTEN",
}


def linux_command_for_freebsd_sysctl(name: str, value: int) -> str:
    """The Linux command for a FreeBSD `sysctl -w name=value`, or Unsupported."""
    if (name, value) in FREEBSD_SYSCTLS_LINUX_ALWAYS:
        return "true"
    if name == "net.inet.tcp.syncookies":
        return f"sysctl -q -w net.ipv4.tcp_syncookies={value}"
    translate = FREEBSD_SYSCTLS_ON_LINUX.get(name)
    if translate is None:
        raise Unsupported(f"sysctl {name}", "no Linux equivalent in profile.FREEBSD_SYSCTLS_ON_LINUX")
    return translate(value)


def script_profile(path: str) -> str:
    """FREEBSD for a script of the FreeBSD tcp-testsuite (its path names it), else LINUX."""
    return FREEBSD if "freebsd" in str(path).replace("\\", "/").lower() else LINUX


# ---------------------------------------------------------------------------------------------
# sysctl -w NAME=VALUE


@dataclass(frozen=True)
class Sysctl:
    name: str
    freebsd: str  # what the setting does in FreeBSD
    field: str | None = None  # the TcpConfig field it sets (used when TcpConfig has that field)
    convert: Callable[[int], object] | None = None  # sysctl value -> field value
    builtin: frozenset[int] = frozenset()  # values ustack already behaves like, with no knob
    note: str = ""  # why builtin values are accepted, or why others are not

    def apply(self, value: int, overrides: dict) -> None:
        """Record the TcpConfig change for `value` in overrides, or raise Unsupported."""
        if self.field and self.field in _CONFIG_FIELDS:
            overrides[self.field] = self.convert(value) if self.convert else value
            return
        if value in self.builtin:
            return
        detail = self.note or "ustack has no setting for this"
        if self.field:
            detail = f"needs TcpConfig.{self.field}; {detail}"
        raise Unsupported(f"sysctl {self.name}={value}", detail)


def _milliseconds(value: int) -> float:
    return value / 1000.0


def _ecn_mode(value: int) -> str:
    """net.inet.tcp.ecn.enable as TcpConfig.ecn (RFC 3168): 0 off, 1 ask and accept, 2 accept."""
    return {0: "off", 1: "on"}.get(value, "passive")


def _off_when_set(value: int) -> bool:
    """For FreeBSD's insecure_* switches: 1 turns the RFC 5961 check off."""
    return not value


_CONFIG_FIELDS = {field.name for field in dataclasses.fields(TcpConfig)}

SYSCTLS = {
    sysctl.name: sysctl
    for sysctl in [
        Sysctl("net.inet.tcp.recvspace", "default receive buffer", "receive_buffer_size"),
        Sysctl("net.inet.tcp.sendspace", "default send buffer", "send_buffer_size"),
        Sysctl("net.inet.tcp.sack.enable", "offer and use SACK (RFC 2018)", "sack", bool),
        Sysctl(
            "net.inet.tcp.rfc1323",
            "window scaling and timestamps (RFC 7323), both at once",
            note="sets window_scaling and timestamps together (see apply_sysctl)",
        ),
        Sysctl("net.inet.tcp.rexmit_initial", "initial RTO in ms (RFC 6298 2.1)", "initial_rto", _milliseconds),
        Sysctl("net.inet.tcp.rexmit_slop", "ms added on top of every computed RTO", "rto_slop", _milliseconds),
        Sysctl("net.inet.tcp.delacktime", "delayed-ACK timeout in ms", "delayed_ack_timeout", _milliseconds),
        Sysctl("net.inet.tcp.keepidle", "keepalive idle time in ms", "keepalive_idle", _milliseconds),
        Sysctl("net.inet.tcp.keepintvl", "keepalive probe interval in ms", "keepalive_interval", _milliseconds),
        Sysctl("net.inet.tcp.keepcnt", "keepalive probes before giving up", "keepalive_probes"),
        Sysctl(
            "net.inet.tcp.keepinit",
            "ms to wait for a connection to be established before giving up",
            "connect_timeout",
            _milliseconds,
        ),
        Sysctl(
            "net.inet.tcp.insecure_rst",
            "1: accept any in-window RST (RFC 793); 0: RFC 5961 3 (exact RST or challenge ACK)",
            "rfc5961_rst_check",
            _off_when_set,
        ),
        Sysctl(
            "net.inet.tcp.insecure_syn",
            "1: an in-window SYN resets the connection (RFC 793); 0: RFC 5961 4 challenge ACK",
            "rfc5961_syn_check",
            _off_when_set,
        ),
        Sysctl(
            "net.inet.tcp.drop_synfin",
            "1: drop segments with both SYN and FIN",
            "drop_syn_fin",
            bool,
        ),
        Sysctl(
            "net.inet.tcp.rexmit_drop_options",
            "1: from the third retransmission on, the SYN carries only the MSS option",
            "syn_retries_with_options",
            lambda value: 3 if value else None,
        ),
        Sysctl(
            "net.inet.tcp.blackhole",
            "1/2: send no RST for segments to closed ports",
            builtin=frozenset({0}),
            note="ustack always answers as RFC 9293 3.10.7.1 says",
        ),
        Sysctl(
            "net.inet.tcp.hostcache.purgenow",
            "flush the per-host cache of RTT and MSS",
            builtin=frozenset({1}),
            note="ustack keeps no host cache, so there is nothing to flush",
        ),
        Sysctl(
            "kern.ipc.maxsockbuf",
            "largest socket buffer; FreeBSD offers the window scale shift that could describe it",
            "window_scale_shift",
            window_shift_for_limit,
            note="sets the shift our SYN offers; by default ustack derives it from receive_buffer_size "
            "(wscale 1 for 64 KiB where FreeBSD offers 6)",
        ),
        Sysctl(
            "net.inet.tcp.ecn.enable",
            "0: no ECN; 1: request and accept; 2: accept ECN only when the peer asks (server mode)",
            "ecn",
            _ecn_mode,
        ),
        Sysctl("net.inet.tcp.ecn.maxretries", "SYN retries with ECN before falling back", "ecn_syn_retries"),
        Sysctl(
            "net.inet.tcp.icmp_may_rst",
            "1: ICMP unreachable codes 2, 3, 9, 10 and 13 abort a connection in SYN-SENT (RFC 5927)",
            "icmp_hard_error_codes",
            lambda value: FREEBSD_ICMP_HARD_ERRORS if value else frozenset(),
        ),
        Sysctl(
            "net.inet.tcp.syncookies",
            "use SYN cookies when the SYN cache overflows",
            "syncookies",
            lambda value: "auto" if value else "off",
        ),
        Sysctl(
            "net.inet.tcp.syncookies_only",
            "use SYN cookies only, no SYN cache",
            builtin=frozenset({0}),
            note="0 is the default (cache, cookies on overflow); cookies only is TcpConfig.syncookies "
            "'always', which net.inet.tcp.syncookies alone sets here",
        ),
        Sysctl(
            "net.inet.tcp.tolerate_missing_ts",
            "0: drop segments without a timestamp once timestamps are negotiated (RFC 7323 3.2)",
            "tolerate_missing_timestamps",
            bool,
        ),
        Sysctl("net.inet.tcp.udp_tunneling_port", "TCP over UDP (RFC 6951 style)", note="no UDP encapsulation"),
        Sysctl("net.inet.tcp.udp_tunneling_overhead", "TCP over UDP overhead", note="no UDP encapsulation"),
    ]
}


def apply_sysctl(name: str, value: int, overrides: dict) -> None:
    """Map `sysctl -w name=value` onto TcpConfig overrides, or raise Unsupported."""
    if name == "net.inet.tcp.rfc1323":  # one FreeBSD switch, two ustack knobs
        overrides["window_scaling"] = overrides["timestamps"] = bool(value)
        return
    sysctl = SYSCTLS.get(name)
    if sysctl is None:
        raise Unsupported(f"sysctl {name}", "not in profile.SYSCTLS")
    sysctl.apply(value, overrides)


# ---------------------------------------------------------------------------------------------
# Script headers


SCRIPT_OPTIONS = {
    "ip_version": "ipv4 or ipv6 (the driver's host then has an IPv6 address only)",
    "tolerance_usecs": "the timing tolerance (Script.tolerance)",
    "mtu": "the interface MTU: ustack's MSS becomes MTU - 40",
    "non_fatal": "`syscall`: a system call with an unexpected result is reported but does not fail the script",
    "tcp_ts_tick_usecs": "the tick of the script's TS val clock: our TSvals are then checked (matcher.py)",
    "udp_encapsulation": "unsupported: ustack has no TCP over UDP",
    "tcp_md5_secret": "unsupported: ustack has no TCP MD5 signatures (RFC 2385)",
    "local_ip": "accepted when it is the driver's own address, 192.168.0.1",
    "remote_ip": "accepted when it is the driver's remote address, 192.0.2.1",
}
SCRIPT_ADDRESSES = {"local_ip": "192.168.0.1", "remote_ip": "192.0.2.1"}  # the driver's (driver.py)


def apply_script_options(options: dict, overrides: dict) -> None:
    for name, value in options.items():
        if name == "ip_version":
            if value not in ("ipv4", "ipv6"):
                raise Unsupported(f"--ip_version={value}", "only ipv4 and ipv6 are supported")
        elif name == "mtu":
            ip_header = 40 if options.get("ip_version") == "ipv6" else 20
            mss = int(value) - ip_header - 20
            if not 28 <= mss <= 65495:
                raise Unsupported(f"--mtu={value}", f"an MSS of {mss} is outside what TcpConfig accepts (28..65495)")
            overrides["mss"] = mss
        elif name in ("udp_encapsulation", "tcp_md5_secret"):
            raise Unsupported(f"--{name}", SCRIPT_OPTIONS[name])
        elif name in SCRIPT_ADDRESSES and value != SCRIPT_ADDRESSES[name]:
            raise Unsupported(f"--{name}={value}", f"the driver's address is {SCRIPT_ADDRESSES[name]}")
        elif name not in SCRIPT_OPTIONS:
            raise Unsupported(f"--{name}", "not in profile.SCRIPT_OPTIONS")


# ---------------------------------------------------------------------------------------------
# Tolerances: where the matcher compares less than packetdrill would


TOLERANCES = {
    "option_order": (
        "TCP options are compared by meaning (mss, wscale, sackOK, sack blocks, TS), not by their "
        "bytes: ustack's TcpSegment carries TcpOptions, which has no order and no nop/eol padding, and "
        "the wire builder lays options out (option_layout='freebsd' gives FreeBSD's "
        "mss,nop,wscale,sackOK,TS order on the wire)."
    ),
    "ts_val_unchecked": (
        "The TS val of a segment ustack sends is ustack's own clock, so its value is not compared; "
        "packetdrill does the same unless --tcp_ts_tick_usecs is given. The offset between ustack's "
        "value and the script's is remembered to translate the ecr of later inbound segments."
    ),
    "ack_without_ack_flag": (
        "When the ACK bit is clear the acknowledgment field has no meaning (RFC 9293 3.1), so it is not "
        "compared (packetdrill compares it with 0)."
    ),
    "repeated_fin": (
        "While its FIN is unacknowledged, FreeBSD sets FIN again on every segment it sends (tcp_output "
        "repeats it at the FIN's sequence number), so the scripts expect `F. 1:1(0) ack 2` where ustack "
        "sends the plain acknowledgment RFC 9293 3.10.7.4 describes, `. 2:2(0) ack 2`. Both tell the peer "
        "the same; a FIN that was never sent is not excused."
    ),
}

# The TOLERANCES the matcher applies on request (the others are built into the comparison).
MATCHER_TOLERANCES = frozenset({"repeated_fin"})


# Tolerances for single scripts, by path relative to the suite: (tolerance, reason).
SCRIPT_TOLERANCES = {
    "state-event-engine/rcv-syn-ack-listen/rcv-syn-ack-with-data-listen-ipv4.pkt": (
        "unlisted_reset",
        "the group's README says the SYN-ACK triggers a RST (RFC 9293 3.10.7.2), but the script has no "
        "line for it (packetdrill never reports a segment no line expects)",
    ),
    "state-event-engine/rcv-syn-ack-listen/rcv-syn-ack-without-data-listen-ipv4.pkt": (
        "unlisted_reset",
        "as rcv-syn-ack-with-data-listen-ipv4.pkt",
    ),
}


def _same_script_as_ipv4(path: str) -> str:
    """The suite's IPv6 variants (freebsd-tcp-testsuite-ipv6) are its IPv4 scripts with IPv6
    addresses and MSS: what is said of one holds for the other, so both look up the IPv4 name."""
    normalized = path.replace("\\", "/")
    return normalized[: -len("-ipv6.pkt")] + "-ipv4.pkt" if normalized.endswith("-ipv6.pkt") else normalized


def script_tolerances(path: str) -> set[str]:
    """The names of the SCRIPT_TOLERANCES that apply to the script at `path`."""
    normalized = _same_script_as_ipv4(path)
    return {name for suffix, (name, _) in SCRIPT_TOLERANCES.items() if normalized.endswith(suffix)}


# ---------------------------------------------------------------------------------------------
# Scripts that encode FreeBSD behaviour contradicting (or going beyond) RFC 9293: ustack keeps to
# the RFC, so these fail, and tests/conform/expected.txt gives this reason for each.

_OLD_ACK = (
    "FreeBSD-specific, contradicts RFC 9293 3.10.7.4 (first check): the peer's last segment carries "
    "SEQ 1, left of RCV.NXT 2 (its FIN took 1), so it is not acceptable and RFC 9293 answers it with an "
    "ACK and drops it; FreeBSD's tcp_input trims it but goes on to process its ACK field"
)
_TIME_WAIT_NO_ACK_BIT = (
    "FreeBSD-specific, contradicts RFC 9293 3.10.7.4 (first check): a FIN without the ACK bit outside "
    "the window in TIME-WAIT is not acceptable and RFC 9293 answers it with an ACK; FreeBSD's "
    "tcp_twcheck drops every segment without the ACK bit before looking at its sequence number"
)
FREEBSD_DEVIATIONS = {
    "rcv-icmp/rcv-icmp-hard-error-ttl-exceeded-ipv4.pkt": (
        "FreeBSD-specific (icmp_may_rst=1), against RFC 9293 3.9.2.2: Time Exceeded is a soft error, "
        "on which TCP MUST NOT abort the connection (MUST-56); FreeBSD ends a connecting socket "
        "with EHOSTUNREACH (the establishment-time habit RFC 5461 section 4 describes)"
    ),
    "rcv-icmp/rcv-icmp-hard-error-ignored-ipv6.pkt": (
        "FreeBSD-specific, beyond RFC 9293 3.7.1 (the MSS option tells what we can receive), RFC 8201 and "
        "RFC 5927 7.2: after a Packet Too Big (MTU 1300) quoting "
        "our SYN, FreeBSD's host cache announces MSS 1240 on the retransmitted SYN; ustack ignores "
        "path MTU messages about a SYN (at most 80 bytes, far below any IPv6 MTU, so the message is "
        "bogus or stale), keeps MSS 1440 and lets the peer's MSS and later messages settle the path"
    ),
    "socket-api/getsockopt/socket-api-getsockopt-tcpinfo-ipv4.pkt": (
        "FreeBSD-specific window rounding, not ECN (which this script negotiates, as ustack now does): "
        "FreeBSD rounds the advertised window up to a whole unit of the scale (65700 bytes of buffer "
        "with shift 6 sent as 1027 units, 65728 bytes, more than it holds); ustack rounds down, "
        "never offering space it does not have (RFC 7323 2.3, RFC 9293 3.8.6.2.2)"
    ),
    "snippets/closed-via-last-ack-ipv4.pkt": _OLD_ACK + ", which acknowledges our FIN and closes LAST-ACK",
    "snippets/time-wait-via-closing-ipv4.pkt": _OLD_ACK + ", which acknowledges our FIN and turns CLOSING into TIME-WAIT",
    "state-event-engine/rcv-ack-time-wait/rcv-ack-time-wait-using-shutdown-middle-ipv4.pkt": (
        "FreeBSD-specific, beyond RFC 9293 3.10.7.4: an acceptable bare ACK in TIME-WAIT needs no reply "
        "(only a retransmitted FIN is acknowledged, fifth and eighth checks); FreeBSD's tcp_twcheck "
        "answers every segment that is not an exact duplicate of the last ACK"
    ),
    "state-event-engine/rcv-fin-time-wait/rcv-fin-time-wait-using-shutdown-outside-left-ipv4.pkt": _TIME_WAIT_NO_ACK_BIT,
    "state-event-engine/rcv-fin-time-wait/rcv-fin-time-wait-using-shutdown-outside-right-ipv4.pkt": _TIME_WAIT_NO_ACK_BIT,
    "state-event-engine/rcv-fin-time-wait/rcv-fin-time-wait-using-shutdown-right-edge-ipv4.pkt": (
        _TIME_WAIT_NO_ACK_BIT + " (the script takes RCV.WND to be the 65700-byte buffer; in TIME-WAIT "
        "FreeBSD keeps only the last advertised window, 65535, as the rcv-syn-*-time-wait scripts show)"
    ),
}


def freebsd_deviation(path: str) -> str | None:
    """Why the script at `path` fails by design (FREEBSD_DEVIATIONS), or None."""
    normalized, twin = path.replace("\\", "/"), _same_script_as_ipv4(path)
    for suffix, reason in FREEBSD_DEVIATIONS.items():
        if normalized.endswith(suffix) or twin.endswith(suffix):
            return reason
    return None


# ---------------------------------------------------------------------------------------------
# Socket options


# name -> (level, TcpConfig field or None, how the value converts, or None if only remembered)
SOCKET_OPTIONS = {
    "SO_REUSEADDR": ("SOL_SOCKET", None, None),  # remembered; ustack has no bind conflicts to relax
    "SO_RCVBUF": ("SOL_SOCKET", "receive_buffer_size", int),
    "SO_SNDBUF": ("SOL_SOCKET", "send_buffer_size", int),
    "SO_LINGER": ("SOL_SOCKET", None, None),  # {l_onoff=1, l_linger=0}: close() aborts (RST)
    "SO_KEEPALIVE": ("SOL_SOCKET", "keepalive", bool),
    "SO_ERROR": ("SOL_SOCKET", None, None),  # read-only: the pending error
    "TCP_NODELAY": ("IPPROTO_TCP", "nagle", lambda value: not value),
    "TCP_MAXSEG": ("IPPROTO_TCP", "mss", int),
    "TCP_KEEPIDLE": ("IPPROTO_TCP", "keepalive_idle", float),  # seconds, as FreeBSD's socket option
    "TCP_KEEPINTVL": ("IPPROTO_TCP", "keepalive_interval", float),
    "TCP_KEEPCNT": ("IPPROTO_TCP", "keepalive_probes", int),
    "TCP_KEEPINIT": ("IPPROTO_TCP", "connect_timeout", float),
    "TCP_NOOPT": ("IPPROTO_TCP", "no_options", bool),  # 1: a SYN with no options at all, not even MSS
    # TCP Fast Open (RFC 7413, tcp/fastopen.py), handled by the Linux driver (linux_calls.py): a
    # listener's Fast Open queue, and a connect() that waits for the first write to send its SYN.
    "TCP_FASTOPEN": ("IPPROTO_TCP", None, None),
    "TCP_FASTOPEN_CONNECT": ("IPPROTO_TCP", None, None),
}
