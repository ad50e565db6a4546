"""Hypothesis strategies for wire values (shared by the property and scapy tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from ustack.wire import IcmpMessage, TcpOptions, TcpSegment

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addresses = u32


@st.composite
def tcp_options(draw):
    return TcpOptions(
        mss=draw(st.none() | u16),
        window_scale=draw(st.none() | u8),
        sack_permitted=draw(st.booleans()),
        sack_blocks=tuple(draw(st.lists(st.tuples(u32, u32), max_size=4))),
        timestamps=draw(st.none() | st.tuples(u32, u32)),
    )


@st.composite
def tcp_segments(draw, max_payload=300):
    return TcpSegment(
        src_port=draw(u16),
        dst_port=draw(u16),
        seq=draw(u32),
        ack=draw(u32),
        flags=draw(u8),
        window=draw(u16),
        urgent_pointer=draw(u16),
        options=draw(tcp_options()),
        payload=draw(st.binary(max_size=max_payload)),
    )


@st.composite
def echo_messages(draw):
    return IcmpMessage(
        type=draw(st.sampled_from([0, 8])),
        code=0,
        identifier=draw(u16),
        sequence=draw(u16),
        payload=draw(st.binary(max_size=200)),
    )


layouts = st.sampled_from(["linux", "freebsd"])


# IPv6 (16-byte addresses, 20-bit flow labels) and ICMPv6 echo.
addresses6 = st.binary(min_size=16, max_size=16)
flow_labels = st.integers(0, 0xFFFFF)


@st.composite
def echo6_messages(draw):
    from ustack.wire import Icmpv6Message

    return Icmpv6Message(
        type=draw(st.sampled_from([128, 129])),
        code=0,
        identifier=draw(u16),
        sequence=draw(u16),
        payload=draw(st.binary(max_size=200)),
    )
