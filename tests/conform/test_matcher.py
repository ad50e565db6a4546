"""The matcher: script numbers <-> live numbers, outbound comparison and its tcpdump-form report."""

from __future__ import annotations

from ustack.conform.matcher import (
    SequenceMap,
    expected_text,
    flag_bits,
    inbound_segment,
    learn_from_outbound,
    match_outbound,
    segment_text,
)
from ustack.conform.parser import parse_text
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment

OUR_ISN = 0xFFFF_FFF0  # just below 2**32: relative numbers must wrap correctly
SYN_OPTIONS = TcpOptions(mss=1460, window_scale=6, sack_permitted=True, timestamps=(5000, 0))


def packet(line: str):
    (event,) = parse_text(line + "\n", "m.pkt").events
    return event


def our_segment(seq, ack, flags, window=65535, options=TcpOptions(), payload=b""):
    return TcpSegment(8080, 50000, seq, ack, flags, window, 0, options, payload)


def connected_numbers() -> SequenceMap:
    """Numbers after `> S 0:0(0)` matched our SYN with ISN OUR_ISN."""
    numbers = SequenceMap()
    spec = packet("+0 > S 0:0(0) win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>")
    segment = our_segment(OUR_ISN, 0, SYN, options=SYN_OPTIONS)
    learn_from_outbound(spec, segment, numbers)
    assert match_outbound(spec, segment, numbers) is None
    return numbers


def test_flag_bits():
    assert flag_bits("S.") == SYN | ACK
    assert flag_bits("F.") == FIN | ACK
    assert flag_bits("P.") == PSH | ACK
    assert flag_bits("-") == 0


def test_the_first_syn_teaches_our_isn_and_later_numbers_are_relative_across_the_wrap():
    numbers = connected_numbers()
    assert numbers.local_to_live(1) == 0xFFFF_FFF1
    assert numbers.local_to_live(100) == 84  # wrapped past 2**32
    assert numbers.local_to_script(84) == 100
    spec = packet("+0 > P. 1:101(100) ack 1 win 65535")
    data = our_segment(numbers.local_to_live(1), 1, PSH | ACK, payload=bytes(100))
    assert match_outbound(spec, data, numbers) is None


def test_syn_ack_without_an_isn_yet_is_learned_too():
    numbers = SequenceMap()
    spec = packet("+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,eol,eol>")
    segment = our_segment(12345, 1, SYN | ACK, options=TcpOptions(mss=1460, sack_permitted=True))
    learn_from_outbound(spec, segment, numbers)
    assert match_outbound(spec, segment, numbers) is None
    assert numbers.local_isn_live == 12345 and numbers.local_to_live(1) == 12346


def test_before_any_syn_numbers_are_taken_as_written():
    """`< . 17:17(0) ack 34` to a closed port is answered by `> R 34:34(0)`."""
    numbers = SequenceMap()
    spec = packet("+0.00 > R  34:34(0) win  0")
    assert match_outbound(spec, our_segment(34, 0, RST, window=0), numbers) is None


def test_inbound_segment_maps_ack_and_sack_into_our_space_and_keeps_the_peer_numbers():
    numbers = connected_numbers()
    spec = packet("+0.1 < . 1:1001(1000) ack 1 win 32767 <nop,nop,sack 11:21>")
    segment = inbound_segment(spec, numbers, 50000, 8080)
    assert (segment.src_port, segment.dst_port) == (50000, 8080)
    assert segment.seq == 1 and segment.ack == 0xFFFF_FFF1
    assert segment.flags == ACK and segment.window == 32767
    assert segment.options.sack_blocks == ((numbers.local_to_live(11), numbers.local_to_live(21)),)
    assert segment.payload == bytes(1000)


def test_inbound_segment_with_a_remote_offset_and_an_absolute_number():
    numbers = SequenceMap(remote_offset=1000)
    assert inbound_segment(packet("+0 < S 0:0(0) win 100"), numbers, 1, 2).seq == 1000
    assert inbound_segment(packet("+0 < R 5:5(0)! win 0"), numbers, 1, 2).seq == 5


def test_inbound_syn_options_and_ack_without_ack_flag():
    spec = packet("+0 < S 0:0(0) ack 7 win 32767 <mss 1460,wscale 3,TS val 1 ecr 0,sackOK, eol>")
    segment = inbound_segment(spec, SequenceMap(), 1, 2)
    assert segment.flags == SYN and segment.ack == 7  # not mapped: the ACK bit is clear
    assert segment.options == TcpOptions(mss=1460, window_scale=3, sack_permitted=True, timestamps=(1, 0))


def test_inbound_echo_is_translated_into_our_timestamp_clock():
    numbers = connected_numbers()  # our TSval 5000 matched the script's 100
    assert numbers.timestamp_offset == 4900
    spec = packet("+0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 700 ecr 100>")
    assert inbound_segment(spec, numbers, 1, 2).options.timestamps == (700, 5000)
    absolute = packet("+0.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 700 ecr 3!>")
    assert inbound_segment(absolute, numbers, 1, 2).options.timestamps == (700, 3)


def test_mismatch_names_the_field_and_shows_both_segments_in_tcpdump_form():
    numbers = connected_numbers()
    spec = packet("+0 > . 1:1(0) ack 1 win 65535")
    sent = our_segment(numbers.local_to_live(1), 1, ACK, window=65534)
    mismatch = match_outbound(spec, sent, numbers)
    assert mismatch.field == "win"
    assert mismatch.reason == "window 65534 where the script expects 65535"
    assert mismatch.expected == "Flags [.], seq 1, ack 1, win 65535, length 0"
    assert mismatch.actual == "Flags [.], seq 1, ack 1, win 65534, length 0"
    assert "expected: Flags [.]" in mismatch.text() and "actual:   Flags [.]" in mismatch.text()


def test_each_field_is_checked():
    numbers = connected_numbers()
    spec = packet("+0 > F. 1:1(0) ack 2 win 65535")
    good = our_segment(numbers.local_to_live(1), 2, FIN | ACK)
    assert match_outbound(spec, good, numbers) is None
    assert match_outbound(spec, good._replace(flags=ACK), numbers).field == "flags"
    assert match_outbound(spec, good._replace(seq=numbers.local_to_live(2)), numbers).field == "seq"
    assert match_outbound(spec, good._replace(ack=3), numbers).field == "ack"
    assert match_outbound(spec, good._replace(payload=b"x"), numbers).field == "length"
    assert match_outbound(spec, good._replace(urgent_pointer=1), numbers).field == "urg"
    assert match_outbound(spec, good._replace(options=TcpOptions(timestamps=(1, 2))), numbers).field == "options"


def test_options_compare_by_meaning_not_order_and_ts_val_is_ignored():
    numbers = SequenceMap()
    spec = packet("+0 > S 0:0(0) win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>")
    reordered = our_segment(7, 0, SYN, options=TcpOptions(mss=1460, window_scale=6, sack_permitted=True, timestamps=(99999, 0)))
    learn_from_outbound(spec, reordered, numbers)
    assert match_outbound(spec, reordered, numbers) is None
    wrong_shift = reordered._replace(options=reordered.options._replace(window_scale=1))
    assert match_outbound(spec, wrong_shift, numbers).reason == "window scale option 1 where the script expects 6"
    wrong_echo = reordered._replace(options=reordered.options._replace(timestamps=(1, 5)))
    assert match_outbound(spec, wrong_echo, numbers).reason == "TS ecr 5 where the script expects 0"


def test_outbound_sack_blocks_are_peer_numbers():
    numbers = SequenceMap(remote_offset=10)
    spec = packet("+0 > . 1:1(0) ack 100 win 65535 <nop,nop,sack 400:500 200:300>")
    sent = our_segment(1, 110, ACK, options=TcpOptions(sack_blocks=((410, 510), (210, 310))))
    assert match_outbound(spec, sent, numbers) is None
    swapped = sent._replace(options=TcpOptions(sack_blocks=((210, 310), (410, 510))))
    assert match_outbound(spec, swapped, numbers).reason == "SACK blocks 200:300 400:500 where the script expects 400:500 200:300"


def test_any_options_any_window_and_any_sequence():
    numbers = SequenceMap()
    spec = packet("*  > S  0:0(0) win 65535 <...>")
    assert match_outbound(spec, our_segment(0, 0, SYN, options=SYN_OPTIONS), numbers) is None
    spec = packet("+0 > S. ...(0) ack 1 <mss 1460>")
    sent = our_segment(424242, 1, SYN | ACK, window=1234, options=TcpOptions(mss=1460))
    assert match_outbound(spec, sent, numbers) is None


def test_ack_field_is_not_compared_without_the_ack_flag():
    spec = packet("+0 > R 0:0(0) win 0")
    assert match_outbound(spec, our_segment(0, 99, RST, window=0), SequenceMap()) is None


def test_absolute_sequence_number_on_an_outbound_reset():
    numbers = connected_numbers()
    spec = packet("+0 > R. 0:0(0)! ack 2 win 0")
    assert match_outbound(spec, our_segment(0, 2, RST | ACK, window=0), numbers) is None


def test_text_forms():
    spec = packet("+0 > P. 1:1461(1460) ack 1 win 65535 <nop,nop,TS val 1 ecr 2>")
    assert expected_text(spec) == "Flags [P.], seq 1:1461, ack 1, win 65535, options [nop,nop,TS val 1 ecr 2], length 1460"
    sent = our_segment(5, 1, SYN, options=SYN_OPTIONS)
    assert segment_text(sent) == "Flags [S], seq 5, win 65535, options [mss 1460,nop,wscale 6,sackOK,TS val 5000 ecr 0], length 0"
    assert expected_text(packet("+0 < icmp unreachable port_unreachable [0:0(0)]")) == "ICMP unreachable port_unreachable"


def test_repeated_fin_tolerance_accepts_the_plain_ack_after_our_fin():
    numbers = connected_numbers()
    fin = packet("+0 > F. 1:1(0) ack 1 win 65535")
    assert match_outbound(fin, our_segment(numbers.local_to_live(1), 1, FIN | ACK), numbers) is None
    again = packet("+0 > F. 1:1(0) ack 2 win 65535")  # FreeBSD repeats the FIN when it ACKs the peer's
    plain_ack = our_segment(numbers.local_to_live(2), 2, ACK)
    assert match_outbound(again, plain_ack, numbers).field == "flags"  # not without the tolerance
    assert match_outbound(again, plain_ack, numbers, frozenset({"repeated_fin"})) is None
    assert numbers.tolerances_used == [("repeated_fin", "Flags [.], seq 2, ack 2, win 65535, length 0")]


def test_repeated_fin_tolerance_does_not_excuse_a_fin_never_sent():
    numbers = connected_numbers()
    fin = packet("+0 > F. 1:1(0) ack 2 win 65535")
    plain_ack = our_segment(numbers.local_to_live(2), 2, ACK)
    assert match_outbound(fin, plain_ack, numbers, frozenset({"repeated_fin"})).field == "flags"
