"""Every knob of the TCP core, with its default and where the default comes from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SYNCOOKIE_MODES = ("off", "auto", "always")  # TcpConfig.syncookies
# The most segments one TSO super-segment may stand for (TcpConfig.offload_segments): a 64 KB one
# holds 44 at MTU 1500, a 256 KiB BIG TCP one 179 (181 over IPv6; Stack); the bound keeps one send bounded
# at a small MTU.
MOST_OFFLOAD_SEGMENTS = 1024


class MssFromMtu(int):
    """An MSS nobody chose: the one a TcpConfig starts with, which fit_to_mtu replaces by the
    link's MTU minus the headers, up as well as down. It is an int to the whole core; only
    fit_to_mtu asks whether the MSS is one of these. An MSS given by hand (TcpConfig(mss=1400),
    dataclasses.replace(config, mss=...), the TCP_MAXSEG option of the conformance profile) is a
    plain int, and the MTU only ever lowers it (RFC 9293 3.7.1: no larger than the MTU allows)."""

    __slots__ = ()



@dataclass(frozen=True)
class TcpConfig:
    """Frozen: one value can be shared by many connections. A connection that needs a different
    value of one of the LIVE_SETTINGS after it opened takes a changed copy
    (Connection.reconfigure)."""

    # --- segments and buffers ---
    # The MSS we announce. By default it follows the link's MTU (fit_to_mtu: MTU minus 40 bytes
    # of IPv4 and TCP headers), 1460 until a link says otherwise; a value set here is kept.
    mss: int = MssFromMtu(1460)
    # 1 MiB each way (Linux autotunes up to 4 MiB to send, 6 MiB to receive). The send buffer
    # holds the whole flight plus what waits: at 256 KiB a download over the TUN offloads was
    # limited by it, each ACK freeing room for one large segment and a few MSS more, so that
    # ~40 % of the segments were pieces of 1-5 MSS, each a whole pass through the stack and a
    # TUN write (scripts/bench.py, issue 12). The receive buffer is the window the peer may fill.
    # Buffers are made at first use and hold only what is in them: an idle connection pays
    # nothing for the size.
    receive_buffer_size: int = 1024 * 1024
    send_buffer_size: int = 1024 * 1024

    # The most out-of-order blocks (runs of bytes beyond a hole) a connection holds; beyond it
    # the furthest are pruned (receive_buffer.py). None: as many as the receive buffer pays for
    # at 256 bytes of bookkeeping each, within 64..4096. FreeBSD limits its reassembly queue
    # the same way (net.inet.tcp.reass.maxqueuelen, 100 segments).
    out_of_order_max_blocks: int | None = None

    # --- options negotiated on the SYN (each used only when both sides offer it) ---
    window_scaling: bool = True  # RFC 7323 2
    # The shift we offer in our window scale option. None: the smallest shift that lets the
    # 16-bit field describe receive_buffer_size (RFC 7323 2.3). A stack that lets buffers grow
    # later offers more: FreeBSD derives it from kern.ipc.maxsockbuf (2 MiB gives 6).
    window_scale_shift: int | None = None
    sack: bool = True  # RFC 2018: SACK-permitted; we send and record SACK blocks
    # RFC 2883 D-SACK: when SACK is in use, the ACK of a segment that repeats data we already
    # hold reports that range as its first SACK block. Linux's default (net.ipv4.tcp_dsack=1).
    dsack: bool = True
    timestamps: bool = True  # RFC 7323 3-5: RTT measurement and PAWS
    # True: our SYN and SYN-ACK carry no options at all, not even MSS (the peer then assumes 536,
    # RFC 9293 3.7.1), and nothing is negotiated: the TCP_NOOPT socket option of BSD.
    no_options: bool = False
    # Once timestamps are negotiated, RFC 7323 3.2 says a segment without one SHOULD be dropped
    # silently. True accepts it (as Linux does); False drops it (FreeBSD's tolerate_missing_ts=0).
    tolerate_missing_timestamps: bool = True

    # --- timers ---
    msl: float = 30.0  # maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 3.4.2)
    initial_rto: float = 1.0  # RFC 6298 2.1
    min_rto: float = 0.2  # Linux's floor; RFC 6298 2.4 says 1 s
    max_rto: float = 120.0  # RFC 6298 2.5: at least 60 s
    rto_slop: float = 0.0  # added on top of every measured or backed-off RTO (rtt.py; BSD's rexmit_slop)
    syn_retries: int = 6  # retransmissions of our SYN before "timed out" (Linux tcp_syn_retries)
    # From this retransmission of our SYN on, offer nothing but the MSS: a SYN lost again and
    # again may be meeting a middlebox that drops options it does not know. None: never
    # (FreeBSD's net.inet.tcp.rexmit_drop_options=1 does it from the third).
    syn_retries_with_options: int | None = None
    # Give up an active open not established within this many seconds (None: only syn_retries
    # limits it). RFC 1122 4.2.3.5 lets the application abandon an open attempt; BSD's
    # TCP_KEEPINIT socket option (net.inet.tcp.keepinit, 75 s) does it in the stack.
    connect_timeout: float | None = None
    # After a full close (not a shutdown) nobody will read what the peer still sends, yet RFC
    # 9293 lets FIN-WAIT-2 wait forever for the peer's FIN. Like Linux (tcp_fin_timeout) and
    # FreeBSD (finwait2_timeout), give up after this many seconds so a vanished peer cannot
    # pin the connection; None waits forever.
    fin_wait_2_timeout: float | None = 60.0
    synack_retries: int = 5  # of our SYN-ACK (Linux tcp_synack_retries)
    max_retransmissions: int = 15  # of data or FIN (Linux tcp_retries2; RFC 1122 4.2.3.5 R2)
    delayed_ack_timeout: float = 0.04  # RFC 9293 3.8.6.3 allows up to 0.5 s; Linux uses 40 ms
    ack_every_segments: int = 2  # RFC 9293 3.8.6.3: ACK at least every second full segment
    # Quick-ACK mode at connection start (Linux's, 16 segments there): the first data segments
    # of a connection are acknowledged at once, not delayed, at most this many and at most as
    # many as the first window holds pairs of 536-byte segments (ReceiveSide.quick_ack), so the
    # peer's slow start grows at one ACK per segment. 0: RFC 9293 3.8.6.3 delayed ACKs from the
    # first segment (the default; RFC 1122 4.2.3.2 allows either).
    quick_ack_segments: int = 0
    persist_min: float = 0.2  # zero-window probe interval bounds (RFC 9293 3.8.6.1)
    persist_max: float = 60.0

    # --- sending policy ---
    # How many segments' worth of data the core may put in one segment it hands down, when the
    # link cuts it into segments of the MSS again (TCP segmentation offload on a TUN device,
    # link/tun.py). 1: none; the Stack raises it on a connection whose segments fill the MTU.
    # The MSS we announce, the peer's MSS and every rule that speaks of "a full-sized segment"
    # (Nagle, SWS avoidance, delayed ACKs, retransmissions) are unchanged.
    offload_segments: int = 1
    nagle: bool = True  # RFC 9293 3.7.4; False is the TCP_NODELAY of sockets
    # Which Nagle: True, Minshall's variant as Linux (a short segment waits only while an earlier
    # short one is unacknowledged; output.py _nagle_holds); False, RFC 896's as FreeBSD (a short
    # segment waits while any data is unacknowledged).
    nagle_minshall: bool = True
    # How the receive window we advertise follows the free buffer space (output.py):
    # "sws_steps": receiver silly-window avoidance as RFC 9293 3.8.6.2.2 writes it: the right
    #   edge moves only in steps of min(buffer/2, MSS).
    # "free_space": every segment advertises all the free space (up to 65535 << shift), except
    #   that less than min(buffer/4, MSS) is advertised as zero: BSD's tcp_output, FreeBSD's.
    #   RCV.WND, against which arriving sequence numbers are checked (RFC 9293 3.10.7.4), is
    #   then all the free space, even beyond what the 16-bit field could say. After a read, a
    #   window update of its own follows BSD's rule too (output._bsd_window_update_due).
    # Neither ever moves the right edge to the left (RFC 9293 3.8.6.2.2, RFC 7323 2.4).
    window_advertisement: str = "sws_steps"

    # --- keepalive (RFC 9293 3.8.4, RFC 1122 4.2.3.6: off by default, idle >= 2 hours) ---
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9

    # --- robustness ---
    rfc1337: bool = False  # ignore RST in TIME-WAIT (RFC 1337 "TIME-WAIT assassination" fix)
    # A SYN in TIME-WAIT beyond the old connection's sequence space reopens the 4-tuple when the
    # connection used timestamps and the SYN's is newer (RFC 6191). True also reopens without
    # timestamps on the sequence number alone (RFC 1122 4.2.2.13, as Linux does); False keeps
    # to RFC 9293 3.10.7.4, which accepts only "if the Timestamp Option is used".
    time_wait_reopen_without_timestamps: bool = True
    challenge_ack_limit: int = 1000  # challenge ACKs per second and connection (RFC 5961 7)
    # RFC 5961 3: only a RST at exactly RCV.NXT resets; one elsewhere in the window draws a
    # challenge ACK. False: any in-window RST resets (RFC 793; FreeBSD's insecure_rst=1).
    rfc5961_rst_check: bool = True
    # RFC 5961 4: a SYN in a synchronized state draws a challenge ACK. False: an in-window SYN
    # resets the connection (RFC 793 3.9; FreeBSD's insecure_syn=1).
    rfc5961_syn_check: bool = True
    # Drop every segment with both SYN and FIN set (FreeBSD's net.inet.tcp.drop_synfin=1). RFC
    # 9293 gives the combination no special meaning: by default the SYN and then the FIN are
    # processed as the state allows.
    drop_syn_fin: bool = False

    # ICMP destination-unreachable codes that refuse a connection still in SYN-SENT (hard errors,
    # RFC 1122 4.2.3.9): protocol and port unreachable. RFC 5461 4 discusses treating the
    # administratively prohibited codes 9, 10 and 13 the same way, as BSD does (icmp_may_rst).
    icmp_hard_error_codes: frozenset = frozenset({2, 3})

    # --- congestion control and loss recovery ---
    # A name in congestion.CONGESTION_CONTROLS. "newreno" (RFC 6582) stays in fast recovery until
    # everything outstanding at its start is acknowledged, retransmitting each further hole on a
    # partial ACK; "reno" (RFC 5681), the first algorithm, leaves it at the first new ACK, so a
    # second loss in one window waits for the retransmission timer. At 5% loss each way, with
    # Limited Transmit and without SACK recovery, NewReno takes a 5 MB transfer from 14.9 to 7.7
    # virtual seconds (scripts/bench_loss.py): FreeBSD's default (its newreno is RFC 6582 too). "cubic" (RFC 9438) keeps NewReno's recovery and grows cwnd as a
    # cubic function of the time since the last loss, reducing by 0.7 instead of 0.5; with HyStart++
    # (RFC 9406) for the first slow start, it is Linux's default and ours. Changeable on an open
    # connection (Connection.reconfigure), like Linux's TCP_CONGESTION socket option.
    congestion_control: str = "cubic"
    initial_window_segments: int = 10  # RFC 6928
    # RFC 3042 Limited Transmit: the first and the second duplicate ACK each let one new segment
    # out beyond cwnd (at most cwnd + 2*MSS in flight), so that a small flight still draws the
    # three duplicate ACKs fast retransmit needs. On in Linux and FreeBSD (net.inet.tcp.rfc3042).
    limited_transmit: bool = True
    # RFC 6675 SACK-based loss recovery, when SACK is negotiated: a segment counts as lost once
    # three segments' worth above it are SACKed, even if duplicate ACKs were lost on the way;
    # in recovery every lost hole is retransmitted once, and new data keeps flowing as far as
    # the bytes still in the network ("pipe") leave room under ssthresh. Linux and FreeBSD
    # (net.inet.tcp.sack.enable) recover this way. False: NewReno/Reno alone (RFC 6582, 5681).
    # With "reno" each partial ACK still ends recovery, so a later hole starts a new one. Beyond
    # RFC 6675, as Linux does, a retransmission that is lost too is sent again once more than
    # two segments sent after it are SACKed (output._resend_lost_retransmissions).
    sack_recovery: bool = True
    # How losses are found, with SACK (rack.py). "rack": RACK-TLP (RFC 8985), Linux's default
    # (net.ipv4.tcp_recovery=1): a segment is lost when one sent a reordering window after it
    # was delivered, and a tail loss probe after about two round trips repairs a lost tail
    # without waiting for the retransmission timer. "dupack": RFC 6675/5681 alone, counting
    # SACKed segments and duplicate ACKs (FreeBSD's default). Without SACK, always "dupack".
    loss_detection: str = "rack"
    # ECN (RFC 3168, ecn.py): "on" asks for it on our SYNs and accepts a peer's request;
    # "passive" accepts but does not ask (Linux's net.ipv4.tcp_ecn=2, FreeBSD's
    # net.inet.tcp.ecn.enable=2: the defaults of both); "off" neither.
    ecn: str = "passive"
    # With ecn "on": how many retransmissions of our SYN still ask for ECN before it falls back to
    # a plain SYN, in case a middlebox drops SYNs with ECE/CWR (RFC 3168 6.1.1.1). 0 like Linux
    # (net.ipv4.tcp_ecn_fallback: the first retransmission no longer asks); FreeBSD's
    # net.inet.tcp.ecn.maxretries is 1.
    ecn_syn_retries: int = 0
    # RFC 6937 Proportional Rate Reduction (with the slow-start reduction bound) decides how much
    # SACK recovery sends on each ACK: a steady ssthresh/RecoverFS of what is delivered instead
    # of RFC 6675's silence until pipe < ssthresh and a burst after. On in Linux since 3.2.
    proportional_rate_reduction: bool = True
    # Pacing (congestion/pacing.py): new data leaves at 2 (slow start) or 1.2 times cwnd / SRTT,
    # in bursts of about 1 ms, instead of all at once after each batch of ACKs; Linux's rate
    # and ratios (tcp_pacing_ss_ratio, tcp_pacing_ca_ratio). Off by default, as Linux paces CUBIC
    # and Reno only under the fq qdisc. Measured over scripts/bench_recovery.py's path (a 64 KB
    # policer, 20 Mbit/s, 20 ms each way): paced, no packet is policed (0 against 37-50 at 0.5 %
    # loss) and CUBIC's goodput rose (b/a 1.15 against 1.06, 5 MB), but Reno's fell below the
    # goal at 20 MB (b/a 0.89 / 0.90 paced against 0.91 / 0.93 unpaced at 1 / 2 % loss).
    # Changeable on an open connection (reconfigure).
    pacing: bool = False

    # --- answers to forged or stale segments (issue 9: blind-injection hardening) ---
    # An unacceptable segment (out of window, an old duplicate, a PAWS failure) is answered with
    # an ACK (RFC 9293 3.10.7.4 first check), but at most once per this many seconds per
    # connection, like Linux's net.ipv4.tcp_invalid_ratelimit (500 ms): a blind attacker's
    # guesses must not turn the connection into an ACK reflector. 0 answers every one. As in
    # Linux, a segment with data (and no SYN) is spared this limit (not the next one).
    unacceptable_ack_interval: float = 0.5
    # ... and at most this many such ACKs in any one second, for all connections of one Stack
    # together (one budget per connection outside a Stack), counted like the RFC 5961 7
    # challenge ACKs (challenge_ack_limit) by the same mechanism (ratelimit.PerSecondLimit).
    unacceptable_ack_limit: int = 1000
    # RFC 5927 / RFC 1191: a "fragmentation needed" never lowers the path MTU below this. A
    # forged one with next-hop MTU 68 would otherwise cut the MSS to 16 bytes for good. 552 is
    # Linux's net.ipv4.route.min_pmtu; at least 68, the IPv4 minimum (RFC 791).
    min_path_mtu: int = 552

    # --- SYN flood defence (RFC 4987) ---
    # SYN cookies (syn_cookies.py, used by listener.py), like Linux's net.ipv4.tcp_syncookies:
    # "off" (0) never: SYNs beyond a full SYN queue are dropped; "auto" (1, Linux's default) once a
    # listener's SYN queue is full; "always" (2) for every SYN, keeping no half-open state at all.
    syncookies: str = "auto"

    # --- TCP Fast Open (RFC 7413, fastopen.py) ---
    # Client: a connection whose application asks for Fast Open (Stack.connect(fast_open=True),
    # MSG_FASTOPEN) asks for a cookie on its SYN, or sends its first data there with the cookie
    # it holds for the server. On, as Linux's default net.ipv4.tcp_fastopen=1: nothing changes
    # for an application that does not ask.
    fast_open_client: bool = True
    # Server: listeners with a Fast Open queue (their TCP_FASTOPEN option, or fast_open_queue)
    # send cookies and accept data on SYNs carrying a valid one. Off, as in Linux by default.
    fast_open_server: bool = False
    # The Fast Open queue of a listener that did not set its own: the most connections accepted
    # with SYN data that may still be in SYN-RECEIVED (RFC 7413 5.1). 0: only listeners with the
    # socket option take Fast Open.
    fast_open_queue: int = 0
    # False: a server accepts SYN data without a valid cookie, and a client sends SYN data before
    # it holds one (Linux's tcp_fastopen bits 0x200 and 0x4; RFC 7413 3 warns against it).
    fast_open_cookie_required: bool = True

    def fit_to_mtu(self, mtu: int, ip_header_length: int = 20) -> "TcpConfig":
        """This configuration for a link of this MTU: an MSS nobody set becomes the MTU minus the
        IP header (20 bytes for IPv4, 40 for IPv6) and the 20-byte TCP header (RFC 9293 3.7.1, RFC
        879), so a large MTU gives large segments; an MSS set explicitly is only lowered to that.
        The core never asks which family carries it: the host says how long its header is."""
        largest = min(mtu - ip_header_length - 20, 65495)
        if isinstance(self.mss, MssFromMtu):
            return self if self.mss == largest else dataclasses.replace(self, mss=MssFromMtu(largest))
        return self if self.mss <= largest else dataclasses.replace(self, mss=largest)

    def __post_init__(self) -> None:
        # The smallest IPv4 MTU is 68 (RFC 791), which leaves 28 bytes after the headers.
        if not 28 <= self.mss <= 65495:
            raise ValueError(f"mss must be in 28..65495, got {self.mss}")
        if self.receive_buffer_size < 1 or self.send_buffer_size < 1:
            raise ValueError("buffer sizes must be positive")
        if self.receive_buffer_size > (0xFFFF << 14):
            raise ValueError("receive_buffer_size exceeds what window scaling can advertise (2**30)")
        if self.send_buffer_size > (1 << 30):
            # Sequence-number distances are only meaningful below 2**31 (RFC 9293 3.4); the peer
            # could not take more than 2**30 at once anyway (RFC 7323 2.3).
            raise ValueError("send_buffer_size exceeds 2**30, beyond what sequence numbers can span")
        if self.window_scale_shift is not None and not 0 <= self.window_scale_shift <= 14:
            raise ValueError(f"window_scale_shift must be in 0..14 (RFC 7323 2.3), got {self.window_scale_shift}")
        if self.window_advertisement not in ("sws_steps", "free_space"):
            raise ValueError(f"window_advertisement must be 'sws_steps' or 'free_space', got {self.window_advertisement!r}")
        if not 1 <= self.offload_segments <= MOST_OFFLOAD_SEGMENTS:
            raise ValueError(f"offload_segments must be in 1..{MOST_OFFLOAD_SEGMENTS}, got {self.offload_segments}")
        if self.out_of_order_max_blocks is not None and self.out_of_order_max_blocks < 1:
            raise ValueError(f"out_of_order_max_blocks must be at least 1 or None, got {self.out_of_order_max_blocks}")
        if self.quick_ack_segments < 0:
            raise ValueError(f"quick_ack_segments cannot be negative, got {self.quick_ack_segments}")
        if self.ack_every_segments < 1:
            raise ValueError("ack_every_segments must be at least 1")
        if self.fin_wait_2_timeout is not None and self.fin_wait_2_timeout <= 0:
            raise ValueError(f"fin_wait_2_timeout must be positive or None, got {self.fin_wait_2_timeout}")
        if self.connect_timeout is not None and self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive or None, got {self.connect_timeout}")
        if not 68 <= self.min_path_mtu <= 65535:
            raise ValueError(f"min_path_mtu must be in 68..65535 (RFC 791), got {self.min_path_mtu}")
        if self.unacceptable_ack_interval < 0 or self.unacceptable_ack_limit < 0:
            raise ValueError("unacceptable_ack_interval and unacceptable_ack_limit cannot be negative")
        if self.syncookies not in SYNCOOKIE_MODES:
            raise ValueError(f"syncookies must be one of {', '.join(SYNCOOKIE_MODES)}, got {self.syncookies!r}")
        if self.fast_open_queue < 0:
            raise ValueError(f"fast_open_queue cannot be negative, got {self.fast_open_queue}")
        if self.synack_retries < 0:
            raise ValueError(f"synack_retries cannot be negative, got {self.synack_retries}")
        if self.ecn not in ("off", "on", "passive"):
            raise ValueError(f"ecn must be 'off', 'on' or 'passive', got {self.ecn!r}")
        if self.ecn_syn_retries < 0:
            raise ValueError(f"ecn_syn_retries cannot be negative, got {self.ecn_syn_retries}")
        if self.loss_detection not in ("rack", "dupack"):
            raise ValueError(f"loss_detection must be 'rack' or 'dupack', got {self.loss_detection!r}")
        if self.msl < 0 or self.delayed_ack_timeout < 0:
            raise ValueError("msl and delayed_ack_timeout cannot be negative")


# The settings an application may change on an open connection, as socket options do (TCP_NODELAY,
# SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT). The others shape the SYN, the buffers or
# the estimators, and are fixed once the connection exists.
LIVE_SETTINGS = frozenset(
    {"nagle", "nagle_minshall", "keepalive", "keepalive_idle", "keepalive_interval", "keepalive_probes", "delayed_ack_timeout",
     "offload_segments", "congestion_control",  # congestion_control: TCP_CONGESTION
     "pacing",
     "send_buffer_size"}  # SO_SNDBUF: how much send() may queue from now on
)
