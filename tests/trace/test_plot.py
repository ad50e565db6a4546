"""The data of `ustack plot`'s time-sequence graph (ustack.trace.plot), checked on scripted
captures (tests/trace/conftest.py's Conversation) whose segments, ACKs, SACK blocks,
retransmissions and losses are known; then that the drawing makes valid SVG and PNG files."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from ustack.trace.model import LEFT, LOST, NORMAL, RETRANSMISSION, RIGHT
from ustack.trace.plot import Bar, SackBlock, time_sequence
from ustack.trace.plot_render import render
from ustack.trace.samples import Samples

SERVER_ISN = 5000  # the Conversation's B side: its data starts at relative 1


def download(conversation, segments=6, lost=(), options_a=None, options_b=None):
    """A (client) opens, B (server) sends `segments` of 1000 bytes; those in `lost` vanish
    before the capture point and are retransmitted at the end, in order."""
    talk = conversation()
    talk.send("A", "S", options=options_a if options_a is not None else [("MSS", 1000), ("SAckOK", b""), ("WScale", 7)])
    talk.send("B", "SA", options=options_b if options_b is not None else [("MSS", 1000), ("SAckOK", b""), ("WScale", 2)])
    talk.send("A", "A", window=500)
    for index in range(segments):
        talk.send("B", "A", b"d" * 1000, lost=index in lost)
        holes = [hole for hole in lost if hole < index]
        sack = [("SAck", (SERVER_ISN + 1 + (max(holes) + 1) * 1000, SERVER_ISN + 1 + (index + 1) * 1000))] if holes else []
        talk.send("A", "A", window=500, options=sack)
    for hole in lost:
        talk.send("B", "A", b"d" * 1000, seq=SERVER_ISN + 1 + hole * 1000, gap=0.2)
        talk.send("A", "A", window=500)
    return talk.ladder()


def test_the_sender_is_the_side_with_more_data_and_numbers_are_relative(conversation):
    graph = time_sequence(download(conversation, segments=3))
    assert (graph.sender.port, graph.receiver.port) == (80, 40000)
    assert [(bar.start, bar.end, bar.kind) for bar in graph.segments] == [
        (0, 1, NORMAL), (1, 1001, NORMAL), (1001, 2001, NORMAL), (2001, 3001, NORMAL)]  # the SYN-ACK, then data
    assert [ack for _, ack in graph.acks] == [1, 1001, 2001, 3001]  # the client's, from its handshake ACK on
    assert graph.segments[1].time == pytest.approx(0.030)  # seconds since the client's SYN (10 ms apart)
    # The client's SYN carries no ACK, and it is the receiver's only segment without one.
    assert len(graph.acks) == len([a for a in download(conversation, segments=3).arrows if a.from_side == LEFT]) - 1


def test_window_line_is_ack_plus_the_window_scaled_by_the_receivers_shift(conversation):
    graph = time_sequence(download(conversation, segments=2))
    assert graph.window_scale == 7  # the client's SYN said 7 (RFC 7323 2.2): the receiver here
    assert graph.windows == [(time, ack + (500 << 7)) for time, ack in graph.acks]


def test_the_syns_own_window_is_never_scaled(conversation):
    graph = time_sequence(download(conversation, segments=1), sender=LEFT)  # the client's direction
    assert graph.window_scale == 2  # the server's SYN-ACK said 2
    (syn_ack_time, syn_ack), *rest = graph.windows
    assert syn_ack == 1 + 64240  # ack of the SYN (relative 1) plus the raw field
    assert rest and all(edge - ack == 64240 << 2 for (_, edge), (_, ack) in zip(rest, graph.acks[1:]))


def test_scaling_needs_both_syns_and_is_unknown_without_them(conversation):
    graph = time_sequence(download(conversation, segments=1, options_b=[("MSS", 1000)]))
    assert graph.window_scale == 0
    assert all(edge - ack == 500 for (_, edge), (_, ack) in zip(graph.windows[1:], graph.acks[1:]))
    talk = conversation()
    talk.send("B", "A", b"d" * 10)  # joined mid-connection: no SYN seen
    talk.send("A", "A", window=300)
    talk.send("B", "A", b"d" * 10)
    graph = time_sequence(talk.ladder())
    assert graph.window_scale is None
    assert [bar.start for bar in graph.segments] == [0, 10]  # relative to its first segment


def test_retransmissions_and_sack_blocks(conversation):
    graph = time_sequence(download(conversation, segments=6, lost=(2,)))
    retransmitted = graph.of_kind(RETRANSMISSION)
    assert [(bar.start, bar.end) for bar in retransmitted] == [(2001, 3001)]
    assert retransmitted[0].time > max(bar.time for bar in graph.of_kind(NORMAL))
    assert 2001 not in [bar.start for bar in graph.of_kind(NORMAL)]  # the lost original never reached the capture
    # After the hole, the client reports what came beyond it (RFC 2018): 3001 up to the newest.
    assert [(block.start, block.end) for block in graph.sacks] == [(3001, 4001), (3001, 5001), (3001, 6001)]
    assert graph.acks[-1][1] == 6001


def test_a_segment_seen_and_then_retransmitted_is_marked_lost(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("B", "A", b"d" * 1000)  # timed: its ACK gives the round trip
    talk.send("A", "A")
    talk.send("B", "A", b"d" * 1000, advance_peer=False)  # captured here, dropped after the capture point
    talk.send("B", "A", b"d" * 1000, advance_peer=False)
    talk.send("A", "A", options=[("SAck", (SERVER_ISN + 2001, SERVER_ISN + 3001))], gap=0.05)  # still waits for 1001
    talk.send("B", "A", b"d" * 1000, seq=SERVER_ISN + 1001, gap=0.2)
    graph = time_sequence(talk.ladder())
    assert [(bar.start, bar.end) for bar in graph.of_kind(LOST)] == [(1001, 2001)]
    assert [(bar.start, bar.end) for bar in graph.of_kind(RETRANSMISSION)] == [(1001, 2001)]
    assert graph.sacks == [SackBlock(graph.sacks[0].time, 2001, 3001)]


def test_a_long_transfer_is_aggregated_into_a_bounded_number_of_points(conversation):
    whole = download(conversation, segments=300, lost=(150,))
    graph = time_sequence(whole, limit=50)
    normal = graph.of_kind(NORMAL)
    assert len(normal) <= 50 and len(graph.acks) <= 50 and len(graph.windows) <= 50 and len(graph.sacks) <= 50
    assert "segments in" in graph.aggregated and "acks sampled" in graph.aggregated
    # Buckets still span the whole transfer, and the one retransmission stays itself.
    assert min(bar.start for bar in normal) == 0 and max(bar.end for bar in normal) == 300_001
    assert [(bar.start, bar.end) for bar in graph.of_kind(RETRANSMISSION)] == [(150_001, 151_001)]
    assert time_sequence(whole).aggregated == ""


def test_samples_stay_bounded_and_cover_the_whole_life():
    class Snapshot:
        cwnd, ssthresh, srtt, rto = 10, 20, 0.01, 0.2

    samples = Samples(limit=8)
    for now in range(100):
        samples.add(float(now), Snapshot())
    assert len(samples.samples) < 8
    times = [sample.time for sample in samples.samples]
    assert times[0] == 0.0 and times[-1] >= 64.0 and times == sorted(times)


def test_drawing_makes_valid_svg_and_png_files(conversation, tmp_path):
    graph = time_sequence(download(conversation, segments=6, lost=(2,)))
    svg, png = tmp_path / "graph.svg", tmp_path / "graph.png"
    render(graph, str(svg))
    render(graph, str(png))
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = svg.read_text()
    for words in ("10.0.0.2:80 &gt; 10.0.0.1:40000", "retransmission", "SACK block", "receive window", "time (s)"):
        assert words in text, words
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_live_plot_has_a_second_panel_with_the_connections_variables(conversation, tmp_path):
    from ustack.trace.samples import Sample

    graph = time_sequence(download(conversation, segments=2))
    samples = [Sample(0.0, 1000, 2**31, None, 1.0), Sample(0.05, 2000, 1500, 0.02, 0.25)]
    svg = tmp_path / "live.svg"
    render(graph, str(svg), samples=samples)
    text = svg.read_text()
    for words in ("cwnd", "ssthresh", "smoothed RTT", "RTO", "milliseconds", "bytes"):
        assert words in text, words


def test_bar_is_a_plain_value():
    assert Bar(1.0, 0, 10) == Bar(1.0, 0, 10, NORMAL) and RIGHT != LEFT


def test_render_windows_draws_each_connection_side_by_side_in_segments(tmp_path):
    # The congestion lab's picture (ustack/labs/congestion.py): one panel per algorithm, cwnd and
    # ssthresh in segments, CUBIC's W_max as a named line.
    from ustack.trace.plot_render import WindowSeries, render_windows

    points = [(0.0, 10 * 1448, 2**31), (0.2, 20 * 1448, 2**31), (0.6, 40 * 1448, 28 * 1448), (1.0, 30 * 1448, 28 * 1448)]
    path = tmp_path / "cwnd.svg"
    render_windows([WindowSeries("reno", points, 1448), WindowSeries("cubic", points, 1448, (("W_max", 40 * 1448),))],
                   str(path), "cwnd over time")
    text = path.read_text()
    for label in ("reno", "cubic", "W_max", "ssthresh", "segments", "cwnd over time"):
        assert label in text, label
