"""TCP options on the SYN: what we offer and what both sides agree on (RFC 9293 3.7.1, RFC 7323,
RFC 2018). Options on other segments (timestamps, SACK blocks) are built by the output path."""

from __future__ import annotations

from ustack.tcp.config import TcpConfig
from ustack.wire.tcp import NO_OPTIONS, TcpOptions

DEFAULT_PEER_MSS = 536  # RFC 9293 3.7.1: assume 536 when the peer sends no MSS option
# The smallest peer MSS we honour. A peer announcing less (even less than our timestamp option)
# would have us send one header per few bytes, a cheap way to make us work (CVE-2019-11479); Linux
# raises such an MSS to net.ipv4.tcp_min_snd_mss, 48, and so do we.
MIN_PEER_MSS = 48
TIMESTAMP_OPTION_SPACE = 12  # 10 bytes of option plus 2 of padding (RFC 7323 appendix A)
MAX_WINDOW_SHIFT = 14  # RFC 7323 2.3
TIMESTAMP_MASK = 0xFFFFFFFF
_new_tuple = tuple.__new__


def window_shift_for(buffer_size: int) -> int:
    """The smallest shift that lets a 16-bit window field describe the whole receive buffer."""
    # (buffer_size >> shift) <= 0xFFFF first holds at bit_length - 16 (asked on every SYN).
    return min(max(buffer_size.bit_length() - 16, 0), MAX_WINDOW_SHIFT)


def offered_window_shift(config: TcpConfig) -> int:
    """The shift our SYN offers: the configured one, or what the receive buffer needs."""
    if config.window_scale_shift is not None:
        return config.window_scale_shift
    size = config.receive_buffer_size
    shift = _SHIFT_FOR_SIZE.get(size)
    if shift is None:
        # Asked four times in each connection's handshake (both SYNs, both Negotiated), for the
        # few buffer sizes a host's configs have: worked out once per size.
        if len(_SHIFT_FOR_SIZE) >= 64:
            _SHIFT_FOR_SIZE.clear()  # per-socket sizes (SO_RCVBUF) come and go
        shift = _SHIFT_FOR_SIZE[size] = window_shift_for(size)
    return shift


_SHIFT_FOR_SIZE: dict[int, int] = {}


TIMESTAMP_TICK_USECS = 1000  # the tick of timestamp_value's clock, for those who compare with it


def timestamp_value(now: float) -> int:
    """Our TSval: a 1 ms clock (RFC 7323 5.4 asks for 1 ms to 1 s per tick).

    The one owner of the clock's rate. Its expression, `int(now * 1000) & TIMESTAMP_MASK`, is
    written in place (with a comment naming this function) only where a segment is built or an
    ACK measured on every packet: syn_options, output.py's _acknowledgement_fields, the
    acknowledgement path's _take_rtt_sample and a TIME-WAIT record's ACK (a call fewer each;
    tests/tcp/test_timestamp_clock.py holds them to this function)."""
    return int(now * 1000) & TIMESTAMP_MASK


def syn_options(
    config: TcpConfig, now: float, *, window_scale: bool, sack: bool, timestamps: bool, ts_recent: int
) -> TcpOptions:
    """The options of our SYN (everything the config enables) or SYN-ACK (only what the peer's SYN
    offered too: RFC 7323 1.3 and RFC 2018 2 forbid a SYN-ACK option the SYN did not carry)."""
    if config.no_options:
        return NO_OPTIONS
    # Every field, in order, through tuple.__new__: the NamedTuple's own __new__ is a Python
    # function, a call more on every SYN and SYN-ACK (as output.py and wire/codec.py build theirs).
    return _new_tuple(TcpOptions, (
        config.mss,
        offered_window_shift(config) if window_scale else None,
        sack,
        (),
        (int(now * 1000) & TIMESTAMP_MASK, ts_recent) if timestamps else None,  # timestamp_value
        None,  # no Fast Open cookie (fastopen.py adds one)
        False,
    ))


class Negotiated:
    """What the two SYNs agreed on."""

    __slots__ = ("window_scaling", "peer_mss", "send_mss", "send_shift", "receive_shift", "sack", "timestamps")

    def __init__(self, config: TcpConfig, peer_syn: TcpOptions, offered: bool = True):
        self.peer_mss = max(peer_syn.mss, MIN_PEER_MSS) if peer_syn.mss else DEFAULT_PEER_MSS
        if config.no_options or not offered:
            # Our SYN offered no options (beyond the MSS): nothing is agreed.
            peer_syn = NO_OPTIONS._replace(mss=peer_syn.mss)
        # RFC 7323 2.2: scaling is on only if both SYNs carry the option; a shift above 14 is
        # taken as 14 (2.3).
        self.window_scaling = config.window_scaling and peer_syn.window_scale is not None
        if self.window_scaling:
            self.send_shift = min(peer_syn.window_scale, MAX_WINDOW_SHIFT)
            self.receive_shift = offered_window_shift(config)
        else:
            self.send_shift = self.receive_shift = 0
        self.sack = config.sack and peer_syn.sack_permitted  # RFC 2018 2
        self.timestamps = config.timestamps and peer_syn.timestamps is not None  # RFC 7323 3.2
        # RFC 9293 3.7.1 and RFC 6691: the MSS counts payload only; the options we put on every
        # segment (timestamps) come out of it.
        self.send_mss = min(self.peer_mss, config.mss) - (TIMESTAMP_OPTION_SPACE if self.timestamps else 0)
