"""The Linux profile: how the runner bends ustack toward the Linux kernel for Google's packetdrill
scripts (the FreeBSD profile, profile.py, does the same for the FreeBSD tcp-testsuite).

The Linux scripts start with `../common/defaults.sh`, which sets the kernel's TCP sysctls to
"production" values, and some then change a few with `sysctl -q` or `set_sysctls.py`. This file
is the ONE documented place that says

  * LINUX_DEFAULTS: the TcpConfig values that make ustack start out as defaults.sh leaves Linux
    (so `defaults.sh` itself changes nothing: the profile already is its result);
  * LINUX_SYSCTLS: every net.ipv4 sysctl the scripts write, what Linux does with it, and what it
    sets in ustack's TcpConfig, or which values ustack already behaves like (with the reason), or
    why other values are unsupported (the script is then "skipped" naming the sysctl);
  * LINUX_SHELL_NOOPS: the other shell commands that change nothing ustack could notice.

Settings defaults.sh makes that ustack has no knob for, and that the profile accepts because the
scripts that depend on them check them elsewhere (a TCP_INFO block, a Fast Open option, a qdisc):
tcp_frto=2 (F-RTO, RFC 5682), tcp_fack=0, tcp_early_retrans=4 / tcp_recovery=1 (TLP, RACK),
tcp_tso_win_divisor, the pacing ratios, tcp_notsent_lowat, tcp_fastopen, tcp_ecn_option. Each is
listed in LINUX_SYSCTLS with its defaults.sh value as "builtin" and the note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ustack.conform.profile import Unsupported, window_shift_for_limit
from ustack.tcp.congestion import CONGESTION_CONTROLS
from ustack.wire.tcp import FIN, PSH, RST, SYN, TcpSegment

# defaults.sh: tcp_rmem="4096 540000 15728640". Linux offers the smallest window scale that lets
# the window describe the largest receive buffer (tcp_rmem[2], tcp_select_initial_window): 8.
LINUX_RMEM = (4096, 540000, 15 * 1024 * 1024)
LINUX_WMEM = (4096, 256 * 1024, 4194304)

LINUX_DEFAULTS = {
    "mss": 1460,  # the scripts' tun0 has MTU 1500
    "receive_buffer_size": LINUX_RMEM[1],  # tcp_rmem[1]
    "send_buffer_size": LINUX_WMEM[1],  # tcp_wmem[1]
    "window_scaling": True,  # tcp_window_scaling=1 (kernel default)
    "window_scale_shift": window_shift_for_limit(LINUX_RMEM[2]),  # 8, the `wscale 8` of the scripts
    "timestamps": True,  # tcp_timestamps=1
    "sack": True,  # tcp_sack=1
    "dsack": True,  # tcp_dsack=1
    "initial_rto": 1.0,  # TCP_TIMEOUT_INIT (RFC 6298 2.1)
    "min_rto": 0.2,  # TCP_RTO_MIN
    "max_rto": 120.0,  # TCP_RTO_MAX
    "syn_retries": 5,  # tcp_syn_retries=5
    "synack_retries": 5,  # tcp_synack_retries=5
    "max_retransmissions": 15,  # tcp_retries2
    "delayed_ack_timeout": 0.04,  # TCP_DELACK_MIN
    "quick_ack_segments": 16,  # TCP_MAX_QUICKACKS: quick-ACK mode at connection start
    "initial_window_segments": 10,  # TCP_INIT_CWND (RFC 6928)
    "msl": 30.0,  # TCP_TIMEWAIT_LEN is 60 s = 2 * MSL
    "keepalive_idle": 7200.0,  # tcp_keepalive_time
    "keepalive_interval": 75.0,  # tcp_keepalive_intvl
    "keepalive_probes": 9,  # tcp_keepalive_probes
    "time_wait_reopen_without_timestamps": True,  # tcp_timewait_state_process accepts SEQ > RCV.NXT
    "rfc1337": False,  # tcp_rfc1337=0: a RST ends TIME-WAIT
    "nagle_minshall": True,  # tcp_nagle_check / tcp_minshall_check
    "syncookies": "auto",  # tcp_syncookies=1
    "ecn": "off",  # tcp_ecn=0
    "window_advertisement": "sws_steps",  # ustack's own; Linux's receive autotuning is not modelled
    # tcp_fastopen=0x70403 (_fast_open): client and server, every listener Fast Open (0x400)
    "fast_open_client": True,
    "fast_open_server": True,
    "fast_open_queue": 1,  # non-zero: the driver gives each listener its listen() backlog (0x400)
    "fast_open_cookie_required": True,
    # Linux paces CUBIC only under the fq qdisc (or with SO_MAX_PACING_RATE); the scripts' tun0
    # has no fq and expect a window to leave at once.
    "pacing": False,
}

# The Fast Open cookie Linux makes for the scripts' client address (192.0.2.1) under defaults.sh's
# tcp_fastopen_key a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4: the server scripts send it back as a valid
# cookie. The driver makes it the cookie of every client of ustack's server
# (IsnGenerator(fixed_fast_open_cookie=...)); `TFO_COOKIE`, packetdrill's name for it, stands for it
# too. ustack makes its own cookies with its own hash (tcp/fastopen.py), so other keys are unsupported.
LINUX_FAST_OPEN_COOKIE = bytes.fromhex("3021b9d889017eeb")
LINUX_FAST_OPEN_KEY = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"

# The scripts were written against a tun0 with TSO/GSO, so the kernel hands packetdrill one
# super-segment of up to 64 KB where it would put several on a wire (`> P. 1:5841(5840)` for a
# 5840-byte write), whatever the MSS. The driver plays the offload: the data segments ustack's host
# sends at one instant on one connection, back to back in sequence, become one (merge_offloaded),
# as GSO would have handed them to the device. Linux's TSO autosizing (which can cut a burst into
# several super-segments at high rates) is not modelled.
LINUX_SEGMENTATION_OFFLOAD = True
LINUX_OFFLOAD_LIMIT = 65535 - 40  # one IPv4 packet


# Where the matcher compares less than packetdrill for the Linux scripts against ustack (the
# kernel backend compares everything): names in the form of profile.TOLERANCES. Every use is kept
# with the result as a warning.
LINUX_TOLERANCES = {
    "psh_policy": (
        "PSH on a data segment is not compared. When to set it is the sender's choice (RFC 9293 "
        "3.9.1: PSH only asks the receiver to deliver promptly). Linux marks PSH once the data written "
        "since the last PSH exceeds half the largest window the peer offered (tcp_mark_push, "
        "forced_push) and on the last segment of a write; ustack sets it on the segment that empties "
        "the send buffer (tcp/output.py). Without this the first difference of many scripts is PSH "
        "and nothing after it is checked."
    ),
}


def merge_offloaded(first: TcpSegment, second: TcpSegment) -> TcpSegment | None:
    """`first` and `second` as the one segment GSO would have carried, or None when they cannot
    be one: not contiguous data, a SYN/RST/FIN before the end, a different ACK or window, too big."""
    if not first.payload or not second.payload or first.flags & (SYN | RST | FIN) or second.flags & (SYN | RST):
        return None
    if second.seq != (first.seq + len(first.payload)) & 0xFFFFFFFF:
        return None
    if (second.ack, second.window, second.flags & ~(PSH | FIN)) != (first.ack, first.window, first.flags & ~PSH):
        return None
    if len(first.payload) + len(second.payload) > LINUX_OFFLOAD_LIMIT:
        return None
    # GSO copies the first header; PSH and FIN belong to the last piece (tcp_gso_segment).
    return first._replace(flags=(first.flags & ~PSH) | (second.flags & (PSH | FIN)), payload=first.payload + second.payload)


# setsockopt(SO_SNDBUF, n): Linux keeps twice n, for its bookkeeping, and getsockopt says so
# (sock_setsockopt; the floor is SOCK_MIN_SNDBUF, 4608 bytes on x86-64).
LINUX_MIN_SEND_BUFFER = 4608


def linux_send_buffer(requested: int) -> int:
    return max(2 * requested, LINUX_MIN_SEND_BUFFER)


def _integer(text: str) -> int:
    return int(text, 0)


def _rmem(text: str, overrides: dict) -> None:
    low, default, high = (int(part) for part in text.split())
    overrides["receive_buffer_size"] = default
    overrides["window_scale_shift"] = window_shift_for_limit(high)


def _wmem(text: str, overrides: dict) -> None:
    overrides["send_buffer_size"] = int(text.split()[1])


def _congestion_control(text: str, overrides: dict) -> None:
    if text not in CONGESTION_CONTROLS:
        known = ", ".join(sorted(CONGESTION_CONTROLS))
        raise Unsupported(f"sysctl net.ipv4.tcp_congestion_control={text}", f"ustack has {known}")
    overrides["congestion_control"] = text


@dataclass(frozen=True)
class LinuxSysctl:
    name: str  # without the net.ipv4. prefix
    linux: str  # what the setting does in Linux
    field: str | None = None  # the TcpConfig field it sets
    convert: Callable[[str], object] = _integer
    builtin: frozenset[str] = frozenset()  # values (as written) ustack already behaves like
    note: str = ""
    setter: Callable[[str, dict], None] | None = None  # for settings of more than one field

    def apply(self, value: str, overrides: dict) -> None:
        if self.setter:
            self.setter(value, overrides)
        elif self.field:
            overrides[self.field] = self.convert(value)
        elif value not in self.builtin:
            raise Unsupported(f"sysctl net.ipv4.{self.name}={value}", self.note or "ustack has no setting for this")


def _flag(text: str) -> bool:
    return bool(int(text, 0))


def _fast_open(value: str, overrides: dict) -> None:
    """net.ipv4.tcp_fastopen, a bit set: 0x1 client, 0x2 server, 0x4 client sends data without a
    cookie, 0x200 server accepts data without one, 0x400 every listener takes Fast Open (queue:
    its backlog). The bits above are not modelled."""
    bits = _integer(value)
    overrides["fast_open_client"] = bool(bits & 0x1)
    overrides["fast_open_server"] = bool(bits & 0x2)
    overrides["fast_open_cookie_required"] = not bits & (0x4 | 0x200)
    overrides["fast_open_queue"] = 1 if bits & 0x400 else 0


LINUX_SYSCTLS = {
    sysctl.name: sysctl
    for sysctl in [
        LinuxSysctl("tcp_rmem", "min, default, max receive buffer", setter=_rmem),
        LinuxSysctl("tcp_wmem", "min, default, max send buffer", setter=_wmem),
        LinuxSysctl("tcp_timestamps", "RFC 7323 timestamps", "timestamps", _flag),
        LinuxSysctl("tcp_window_scaling", "RFC 7323 window scaling", "window_scaling", _flag),
        LinuxSysctl("tcp_sack", "RFC 2018 SACK", "sack", _flag),
        LinuxSysctl("tcp_dsack", "RFC 2883 D-SACK", "dsack", _flag),
        LinuxSysctl("tcp_syn_retries", "SYN retransmissions", "syn_retries"),
        LinuxSysctl("tcp_synack_retries", "SYN-ACK retransmissions", "synack_retries"),
        LinuxSysctl("tcp_syncookies", "SYN cookies on overflow", "syncookies",
                    lambda text: "auto" if _integer(text) == 1 else ("always" if _integer(text) == 2 else "off")),
        LinuxSysctl("tcp_congestion_control", "the congestion control module", setter=_congestion_control),
        LinuxSysctl("tcp_reordering", "initial duplicate-ACK threshold", builtin=frozenset({"3"}),
                    note="ustack's threshold is the RFC 5681 3 (RFC 6675) DupThresh of 3"),
        # 1 is what ustack does (output.py: RFC 5681 4.1); 0, defaults.sh's value, is accepted so
        # that the scripts run, though ustack has no setting to turn the restart off.
        LinuxSysctl("tcp_slow_start_after_idle", "restart cwnd after an idle RTO", builtin=frozenset({"0", "1"}),
                    note="ustack restarts cwnd after an idle RTO (RFC 5681 4.1)"),
        # 0: never, 1: ask on our SYNs and agree, 2: agree when the peer asks (TcpConfig.ecn).
        LinuxSysctl("tcp_ecn", "ECN negotiation (RFC 3168)", "ecn",
                    lambda text: {0: "off", 1: "on", 2: "passive"}[_integer(text)]),
        LinuxSysctl("tcp_ecn_option", "AccECN option", builtin=frozenset({"2"}),
                    note="accepted at defaults.sh's value: matters only once ECN is negotiated"),
        LinuxSysctl("tcp_frto", "F-RTO (RFC 5682)", builtin=frozenset({"2"}),
                    note="accepted at defaults.sh's value; ustack has no F-RTO, so a spurious RTO is not undone"),
        LinuxSysctl("tcp_fack", "forward acknowledgment", builtin=frozenset({"0"}), note="ustack has no FACK"),
        LinuxSysctl("tcp_early_retrans", "tail loss probe", builtin=frozenset({"4"}),
                    note="accepted at defaults.sh's value; ustack sends tail loss probes (RFC 8985) by default"),
        LinuxSysctl("tcp_recovery", "RACK loss detection", builtin=frozenset({"1"}),
                    note="accepted at defaults.sh's value; ustack's loss detection is RACK (RFC 8985) by default"),
        LinuxSysctl("tcp_tso_win_divisor", "TSO deferral", builtin=frozenset({"3", "100"}),
                    note="ustack sends MSS-sized segments and never defers for TSO"),
        # Any value: the driver's GSO merge (LINUX_SEGMENTATION_OFFLOAD) does not model autosizing
        # at defaults.sh's 2 either, so a larger floor changes nothing it models.
        LinuxSysctl("tcp_min_tso_segs", "TSO autosizing floor", builtin=frozenset(str(n) for n in range(1, 128)),
                    note="ustack has no TSO autosizing"),
        LinuxSysctl("tcp_pacing_ss_ratio", "pacing rate in slow start", builtin=frozenset({"200"}),
                    note="accepted at defaults.sh's value; ustack does not pace"),
        LinuxSysctl("tcp_pacing_ca_ratio", "pacing rate in congestion avoidance", builtin=frozenset({"120"}),
                    note="accepted at defaults.sh's value; ustack does not pace"),
        LinuxSysctl("tcp_notsent_lowat", "TCP_NOTSENT_LOWAT default", builtin=frozenset({"4294967295"}),
                    note="accepted at defaults.sh's value (no limit), which is ustack's behaviour"),
        LinuxSysctl("tcp_fastopen", "TCP Fast Open (RFC 7413)", setter=_fast_open),
        LinuxSysctl("tcp_fastopen_key", "the Fast Open cookie key", builtin=frozenset({LINUX_FAST_OPEN_KEY}),
                    note="only defaults.sh's key, whose cookie the profile knows (LINUX_FAST_OPEN_COOKIE)"),
        LinuxSysctl("tcp_fastopen_blackhole_timeout_sec", "Fast Open off after middlebox trouble",
                    builtin=frozenset({"0"}), note="ustack never turns Fast Open off by itself (as 0)"),
    ]
}


def apply_linux_sysctl(name: str, value: str, overrides: dict) -> None:
    """Map a Linux `sysctl net.ipv4.NAME=VALUE` onto TcpConfig overrides, or raise Unsupported."""
    dotted = name.replace("/", ".")
    short = dotted.removeprefix("net.ipv4.")
    sysctl = LINUX_SYSCTLS.get(short) if short != dotted else None
    if sysctl is None:
        raise Unsupported(f"sysctl {dotted}", "not in linux_profile.LINUX_SYSCTLS")
    sysctl.apply(value.strip(), overrides)


# Shell commands that change nothing ustack could notice: (the command's words) -> why.
LINUX_SHELL_NOOPS = {
    ("tc", "qdisc", "add", "dev", "tun0", "root", "pfifo"): "defaults.sh: a FIFO qdisc, as ustack's queue is",
    ("ethtool", "-K", "tun0", "tso", "off", "gso", "off"): "ustack sends MSS-sized segments (offload_segments=1)",
    ("nstat",): "reads the kernel's counters only",
    # Linux's default (ACK train and delay detection); ustack's HyStart is HyStart++ (RFC 9406,
    # tcp/congestion/hystart.py), delay-based, so where the two differ the script fails.
    ("echo", "3", "/sys/module/tcp_cubic/parameters/hystart_detect"): "hystart_detect=3 is Linux's default",
}


# ---------------------------------------------------------------------------------------------
# Why Linux scripts fail against ustack (tests/conform/expected_linux.txt quotes these). "kernel
# passes" / "kernel fails" is the verdict of Google's packetdrill on this machine's kernel
# (../shared/conformance/packetdrill-linux/BASELINE.md): where the kernel fails too, the script
# does not describe Linux 6.18 either. "(recovery work)" marks differences in congestion control,
# PRR and RACK-TLP (tcp/congestion/, tcp/rack.py), left to that work.

_ABORT_RESET = (
    "documented difference (RFC 9293 3.10.4 and 3.10.7: a reset is <SEQ=SND.NXT><CTL=RST>): a close "
    "with unread data (RFC 2525 2.17) or of a listener with connections not accepted aborts with a "
    "bare RST in ustack; Linux's active reset carries ACK (and timestamps)"
)
_WINDOW_UPDATE = (
    "documented difference: when the application reads, ustack sends a window update once the "
    "window's right edge can move by a full segment (receiver SWS avoidance, RFC 9293 3.8.6.2.2, "
    "output.py); Linux sends none here"
)
_NOT_ANALYSED = "not analysed further (Fast Open work)"
_NAGLE_TAIL = (
    "ustack's Nagle is Linux's (Minshall's variant, TcpConfig.nagle_minshall: a short segment waits "
    "only while an earlier short one is unacknowledged), so the write's sub-MSS tail leaves at once "
    "after the full segments; how the burst is cut differs"
)
_RTO_FLOOR = (
    "documented difference (RFC 6298 2.4 floors the RTO itself): Linux floors the variance term "
    "(RTO >= SRTT + 200 ms, tcp_rtt_estimator's mdev_max >= tcp_rto_min), ustack floors the whole "
    "RTO at min_rto = 200 ms (tcp/rtt.py); after two 100 ms samples Linux's RTO is 300 ms, ustack's "
    "250 ms, and the tail loss probe (capped at the RTO, RFC 8985 7.2) comes 50 ms earlier"
)
_PRR_CWND = (
    "(recovery work) ustack keeps cwnd at its value and lets PRR (RFC 6937, tcp/congestion/prr.py) "
    "gate what is sent; Linux sets cwnd to in-flight plus PRR's sndcnt on every ACK (tcp_cwnd_reduction), "
    "so tcpi_snd_cwnd differs during recovery"
)
_PRR_AMOUNT = (
    "(recovery work) on entering fast recovery ustack retransmits the first two lost segments at "
    "once (1:2001): with pipe below ssthresh it applies RFC 6937's PRR-SSRB bound (ssthresh - pipe, "
    "at most delivered + 1 MSS) on every ACK; Linux applies that bound only to an ACK that advances "
    "SND.UNA without new losses (tcp_cwnd_reduction, the 'safe ACK' of PRR's revision) and "
    "otherwise PRR-CRB, one segment per segment delivered, so it retransmits only 1:1001"
)
_LIMITED_TRANSMIT = (
    "(recovery work) after two Limited Transmit segments (RFC 3042) and an ACK that shows reordering, "
    "ustack's window lets one segment more out than Linux's (3000 bytes where the script expects "
    "2000); not analysed further here"
)
_ACK_GROWTH_LIMIT = (
    "(recovery work) one cumulative ACK for 10 segments in slow start grows ustack's cwnd by 8 "
    "(RFC 9406 4.2, HyStart++: at most L = 8 SMSS per ACK for a sender that does not pace, as RFC "
    "3465 2.2 limits growth per ACK); Linux grows it by all 10 (tcp_slow_start), so cwnd is 18, not 20"
)
_RACK_TLP = (
    "(recovery work) Linux retransmits early through RACK and the tail loss probe (tcp_recovery=1, "
    "tcp_early_retrans=4); ustack has RACK-TLP too (RFC 8985, tcp/rack.py) but its reordering window "
    "and probe timing differ from Linux's in this script"
)
_CWND_LIMITED = (
    "(recovery work) slow start growth when application-limited: Linux grows cwnd while it is below "
    "twice the largest flight of the last window (tcp_is_cwnd_limited, max_packets_out); ustack's "
    "CongestionControl.cwnd_limited compares with the flight at the ACK, so once the ACKs have "
    "drained half of a 10-segment flight cwnd stops at 14 where Linux reaches 20 (RFC 7661 4.1 "
    "measures the flight over an RTT, as Linux does)"
)
_ECN_CWR = (
    "(recovery work) on an ECE (RFC 3168 6.1.2) ustack sets ssthresh from the flight (CUBIC's "
    "beta times FlightSize, RFC 9438 4.6) and cwnd to it at once (tcp/ecn.py reduce_once), giving "
    "2 segments here; Linux takes ssthresh from cwnd (7) and reduces toward it by PRR in CWR state (4)"
)
_TSO_AUTOSIZING = (
    "kernel fails too; TSO autosizing: the driver hands segments sent back to back to the script as "
    "one (LINUX_SEGMENTATION_OFFLOAD) and does not cut them at Linux's autosized TSO limit "
    "(tcp_min_tso_segs, pacing rate), so ustack's burst arrives as one 10000-byte packet where the "
    "script wants two of 5000 (the kernel gives 6000)"
)
LINUX_DIFFERENCES = {
    "ioctl/ioctl-siocinq-fin.pkt": f"kernel fails too (later, on timing); {_WINDOW_UPDATE}",
    "nagle/https_client.pkt": (
        "kernel fails too (on TSO sizes); ustack's burst of 2002 bytes leaves as one GSO packet "
        "where the script wants 974 (LINUX_SEGMENTATION_OFFLOAD)"
    ),
    "ts_recent/invalid_ack.pkt": (
        "kernel fails too, on the same line and value; not a ustack bug (checked: ustack keeps "
        "TS.Recent at 200, echoes it and accepts the next segment with TSval 201). The segment whose "
        "ACK acknowledges data never sent draws an ACK (RFC 9293 3.10.7.4: 'send an ACK, drop the "
        "segment'), as Linux 6.18 now does too; the script, older, expects no reply"
    ),
    "ts_recent/reset_tsval.pkt": f"kernel passes; {_ABORT_RESET}",
    "cubic/cubic-rto-ss-ca-cwnd-bump.pkt": f"kernel fails too (later, on PSH); {_RTO_FLOOR}",
    "cwnd_moderation/cwnd-moderation-ecn-enter-cwr-no-moderation-700.pkt": f"kernel fails too (Python block); {_ECN_CWR}",
    "fast_recovery/prr-ss-10pkt-lost-1.pkt": f"kernel fails too (Python block); {_PRR_CWND}",
    "fast_recovery/prr-ss-30pkt-lost-1_4-11_16.pkt": (
        "kernel fails too, with the same 2000 bytes where the script expects 1000 (two segments of one "
        "ACK leave as one TSO packet, which the driver's GSO merge models)"
    ),
    "fast_recovery/prr-ss-30pkt-lost1_4.pkt": f"kernel fails too (later, line 42); {_PRR_AMOUNT}",
    "fast_recovery/prr-ss-ack-below-snd_una-cubic.pkt": (
        "kernel passes; (recovery work) on entering recovery ustack also retransmits 3001:4001 at once: "
        "RACK takes it for lost because 8001:9001, sent after it in the same burst, was SACKed, and "
        "RFC 8985 6.2 gives no reordering window in recovery; Linux does not retransmit it, and the "
        "next ACK (4001) shows it was not lost"
    ),
    "sack/sack-shift-sacked-2-6-8-3-9-nofack.pkt": f"kernel passes; {_PRR_AMOUNT}",
    "sack/sack-shift-sacked-7-3-4-8-9-fack.pkt": f"kernel fails too (earlier, on TSO sizes); {_PRR_AMOUNT}",
    "sack/sack-shift-sacked-7-5-6-8-9-fack.pkt": f"kernel fails too (earlier, on TSO sizes); {_PRR_AMOUNT}",
    "cubic/cubic-hystart-delay-rtt-jumps-upward.pkt": f"kernel fails too (earlier, on PSH); {_ACK_GROWTH_LIMIT}",
    "cubic/cubic-hystart-delay-min-rtt-jumps-downward.pkt": f"kernel fails too (earlier, on PSH); {_ACK_GROWTH_LIMIT}",
    "fast_retransmit/fr-4pkt-fack-last-byte.pkt": f"kernel fails too; {_RACK_TLP}",
    "fast_retransmit/fr-4pkt-fack-last-mss.pkt": f"kernel fails too; {_RACK_TLP}",
    "limited_transmit/limited-transmit-no-sack.pkt": f"kernel fails too (earlier, on TSO sizes); {_LIMITED_TRANSMIT}",
    "limited_transmit/limited-transmit-sack.pkt": f"kernel fails too (earlier, on TSO sizes); {_LIMITED_TRANSMIT}",
    "slow_start/slow-start-app-limited.pkt": f"kernel passes; {_CWND_LIMITED}",
    "slow_start/slow-start-app-limited-9-packets-out.pkt": f"kernel fails too (later, line 37); {_CWND_LIMITED}",
    "slow_start/slow-start-after-idle.pkt": _TSO_AUTOSIZING,
    "slow_start/slow-start-after-win-update.pkt": _TSO_AUTOSIZING,
    "blocking/blocking-write.pkt": (
        "kernel fails too (its write returns 60000: Linux charges skb overhead to the send buffer); "
        "the script has no line for the data the kernel sends while the write blocks, which the "
        "runner reports as unexpected"
    ),
    **{  # TCP Fast Open (RFC 7413, tcp/fastopen.py)
        "fastopen/client/cookie-less-sendto.pkt": (
            f"kernel passes; {_NAGLE_TAIL}: Linux sends the 2920 bytes and then the 660-byte tail, "
            "ustack's runner sees the 3580 bytes together; not analysed further"
        ),
        "fastopen/client/fallback-exp-opt.pkt": (
            "kernel passes; a server that ignored a cookie request in the experimental form (FOEXP) is "
            "asked in the FOEXP form again; Linux goes back to the RFC 7413 option (kind 34) and keeps it "
            "(tcp_rcv_fastopen_synack's try_exp = 2, which tcp_fastopen_cache_set never lowers): ustack's "
            "client cache (tcp/fastopen.py, ClientFastOpen.synack) keeps only 'experimental', not that "
            "both forms were tried"
        ),
        "fastopen/client/nonblocking-connect-bypass.pkt": (
            "kernel passes; driver difference: epoll_create gets a closed socket's descriptor number back, "
            "where the script counts on Linux's numbering"
        ),
        "fastopen/client/nonblocking-sendmsg-multi-iov.pkt": (
            "kernel passes; quick-ACK mode: ustack's approximation of Linux's interactive ('pingpong') mode "
            "(ReceiveSide.quick_ack) delays this ACK by 40 ms where Linux sends it at once"
        ),
        "fastopen/client/nonblocking-sendto-over-mss.pkt": (
            "kernel passes; quick-ACK mode: ustack's approximation of Linux's interactive ('pingpong') "
            "mode (ReceiveSide.quick_ack) delays the ACK of the peer's 1000 bytes by 40 ms where Linux "
            "sends it at once (the 3580-byte burst before it now matches: Minshall's Nagle, as Linux)"
        ),
        "fastopen/client/sendto-af-unspec.pkt": (
            "kernel passes; driver difference: sendto's address is not looked at, so AF_UNSPEC is not "
            "refused with EOPNOTSUPP"
        ),
        "fastopen/client/simultaneous-fast-open.pkt": (
            "kernel passes; in a simultaneous open ustack keeps the data on the peer's SYN for ESTABLISHED "
            "(RFC 9293 3.10.7.3) and acknowledges it; Linux does not take it"
        ),
        "fastopen/client/syn-data-icmp-unreach-frag-needed-with-seq-ipv6.pkt": (
            "kernel fails too (packetdrill: bad ICMP type packet_too_big); the IPv6 SYN's MSS is 1460, the "
            "script's 1440"
        ),
        "fastopen/client/syn-data-icmp-unreach-frag-needed-with-seq.pkt": (
            "kernel passes; on a 'fragmentation needed' for a SYN with data Linux sends the SYN again at "
            "once, without the data; ustack lowers the path MTU (RFC 1191) and waits for its retransmission timer"
        ),
        "fastopen/client/syn-data-icmp-unreach-frag-needed.pkt": (
            "kernel passes; on a 'fragmentation needed' for a SYN with data Linux sends the SYN again at "
            "once, without the data; ustack lowers the path MTU (RFC 1191) and waits for its retransmission timer"
        ),
        "fastopen/client/syn-data-partial-or-over-ack.pkt": (
            "kernel passes; after a SYN-ACK that takes 100 of the SYN's 1420 bytes ustack sends the rest "
            "again at once (RFC 7413 4.2.2; Nagle holds back only new data, RFC 896), as Linux does; the "
            "4000 bytes written next leave back to back and the driver's GSO merge hands them to the script "
            "as one 4000-byte packet, where Linux's TSO autosizing cuts its burst into two of 2000: a driver "
            "limitation (no TSO autosizing), not a ustack difference"
        ),
        "fastopen/server/basic-cookie-not-reqd.pkt": f"kernel passes; {_WINDOW_UPDATE}",
        "fastopen/server/opt34/basic-cookie-not-reqd.pkt": f"kernel passes; {_WINDOW_UPDATE}",
        "fastopen/server/basic-non-tfo-listener.pkt": (
            "kernel passes; ustack acknowledges the data that completed the handshake when the application "
            "reads it, Linux after the script's end"
        ),
        "fastopen/server/opt34/basic-non-tfo-listener.pkt": (
            "kernel passes; ustack acknowledges the data that completed the handshake when the application "
            "reads it, Linux after the script's end"
        ),
        "fastopen/server/client-ack-dropped-then-recovery-ms-timestamps.pkt": (
            "kernel fails too (packetdrill cannot parse the cookie name TFO_COOKIE, which the profile maps "
            f"to LINUX_FAST_OPEN_COOKIE); ustack's burst is 9000 bytes where the script wants 5000; {_NOT_ANALYSED}"
        ),
        "fastopen/server/icmp-baseline.pkt": (
            "kernel fails too (packetdrill: bad ICMP code CODE); the driver sends no ICMP with a code by name"
        ),
        "fastopen/server/listener-closed-trigger-rst.pkt": f"kernel fails too (packetdrill: TFO_COOKIE); {_ABORT_RESET}",
        "fastopen/server/opt34/listener-closed-trigger-rst.pkt": f"kernel passes; {_ABORT_RESET}",
        "fastopen/server/unread-data-closed-trigger-rst.pkt": f"kernel fails too (packetdrill: TFO_COOKIE); {_ABORT_RESET}",
        "fastopen/server/opt34/unread-data-closed-trigger-rst.pkt": f"kernel passes; {_ABORT_RESET}",
        "fastopen/server/pure-syn-data.pkt": (
            "kernel passes; the script's second connection reuses the ports of the first, still open in "
            "ustack, which answers the SYN with a challenge ACK (RFC 5961 4)"
        ),
        "fastopen/server/opt34/pure-syn-data.pkt": (
            "kernel passes; the script's second connection reuses the ports of the first, still open in "
            "ustack, which answers the SYN with a challenge ACK (RFC 5961 4)"
        ),
    },
}


def linux_difference(path: str) -> str | None:
    """Why the Linux script at `path` fails against ustack (LINUX_DIFFERENCES), or None."""
    normalized = path.replace("\\", "/")
    for suffix, reason in LINUX_DIFFERENCES.items():
        if normalized.endswith(suffix):
            return reason
    return None
