"""Drawing a `TimeSequence` (plot.py) with matplotlib, as an SVG or a PNG file, and, when
`Samples` of the connection's variables are given (a live stack), a second panel below with
cwnd and ssthresh (bytes, left axis) and the smoothed RTT and the RTO (milliseconds, right axis).

Sized and coloured to be read from the back of a room: large type, thick lines, colours that
stay apart in grey scale (blue data, red retransmissions, black crosses for losses).
"""

from __future__ import annotations

from .plot import DUPLICATE, LOST, NORMAL, RETRANSMISSION, TimeSequence

STYLE = {
    NORMAL: dict(color="#1f5fbf", label="data segment", linewidth=3.0),
    RETRANSMISSION: dict(color="#d62728", label="retransmission", linewidth=3.0),
    DUPLICATE: dict(color="#9467bd", label="duplicate", linewidth=2.0),
    LOST: dict(color="#ff7f0e", label="lost", linewidth=3.0),
}
FONT_SIZE = 15


def _thousands():
    """Tick labels as 300,000 rather than 3e5 with an offset: readable from the back of a room.
    (A new formatter per axis: matplotlib binds each to one axis.)"""
    import matplotlib.ticker

    return matplotlib.ticker.FuncFormatter(lambda value, _position: f"{value:,.0f}")


def render(graph: TimeSequence, path: str, samples=None, image_format: str | None = None) -> None:
    """Write the graph to `path` (format from its extension unless `image_format`: 'svg'/'png')."""
    # The object API, not pyplot: no global figure state, no display backend (files only, through
    # the Agg canvas), so a live stack can draw one connection after another safely.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 2,
                                "svg.fonttype": "none", "axes.grid": True, "grid.alpha": 0.3}):
        panels = 2 if samples else 1
        figure = Figure(figsize=(13, 8 if panels == 1 else 11))
        FigureCanvasAgg(figure)
        axes = figure.subplots(panels, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 2][:panels]})
        top = axes[0][0]
        if graph.windows:
            times, edges = zip(*graph.windows)
            top.step(times, edges, where="post", color="#2ca02c", linewidth=2.0, label="receive window (ack + win)")
        if graph.acks:
            times, acks = zip(*graph.acks)
            top.step(times, acks, where="post", color="#555555", linewidth=2.0, label="ACK")
        if graph.sacks:
            top.add_collection(LineCollection([((s.time, s.start), (s.time, s.end)) for s in graph.sacks],
                                              colors="#e377c2", linewidths=3.0, alpha=0.6, zorder=1, label="SACK block"))
        for kind in (NORMAL, DUPLICATE, RETRANSMISSION, LOST):
            bars = graph.of_kind(kind)
            if not bars:
                continue
            bar_lines = [((bar.time, bar.start), (bar.time, bar.end)) for bar in bars]
            top.add_collection(LineCollection(bar_lines, zorder=3, **STYLE[kind]))
            if kind != NORMAL:  # a marker too: a short bar alone is invisible on a long transfer
                marker = "x" if kind == LOST else "o"
                top.plot([b.time for b in bars], [b.end for b in bars], linestyle="none", marker=marker,
                         markersize=9 if kind == LOST else 6, color=STYLE[kind]["color"],
                         markeredgewidth=2.5)
        top.autoscale_view()
        notes: list[str] = []
        _focus_on_data(top, graph, notes)
        top.yaxis.set_major_formatter(_thousands())
        top.set_ylabel("sequence number (relative)")
        title = f"{graph.title}  (time-sequence, {graph.source})" if graph.source else graph.title
        top.set_title(title)
        top.legend(loc="upper left", fontsize=FONT_SIZE - 2, framealpha=0.9)
        if graph.window_scale is None:
            notes.append("window scale unknown (no SYN): windows unscaled")
        if graph.aggregated:
            notes.append(f"aggregated to stay bounded: {graph.aggregated}")
        if not graph.segments:
            notes.append("no data segment in this direction")
        if notes:
            top.text(0.99, 0.02, "\n".join(notes), transform=top.transAxes, ha="right", va="bottom",
                     fontsize=FONT_SIZE - 3, color="#7f0000")
        if samples:
            _draw_samples(axes[1][0], samples)
        axes[-1][0].set_xlabel("time (s)")
        figure.tight_layout()
        figure.savefig(path, format=image_format, dpi=100)


def _focus_on_data(axis, graph: TimeSequence, notes: list[str]) -> None:
    """Keep the data readable: a window far above the data (8 MB offered, 30 kB sent) would
    squash every segment into the bottom line, so the window line is then cut at the top."""
    heights = [bar.end for bar in graph.segments] + [ack for _, ack in graph.acks] + [s.end for s in graph.sacks]
    if not heights:
        return
    top = max(heights)
    low = min([bar.start for bar in graph.segments] + [ack for _, ack in graph.acks])
    margin = max((top - low) * 0.08, 1)
    highest_window = max((edge for _, edge in graph.windows), default=top)
    if highest_window > top + (top - low):
        axis.set_ylim(low - margin, top + margin)
        notes.append(f"receive window line above the top (up to {highest_window:,})")


def _draw_windows(axis, points, unit: int = 1) -> None:
    """cwnd and ssthresh over time as steps, from (time, cwnd, ssthresh) points, in bytes / unit
    (the serve --plot panel in bytes, the congestion lab in segments)."""
    axis.step([time for time, _, _ in points], [cwnd / unit for _, cwnd, _ in points], where="post",
              color="#1f5fbf", linewidth=2.5, label="cwnd")
    # An ssthresh still at its initial "infinite" value would flatten everything else.
    finite = [(time, ssthresh / unit) for time, _, ssthresh in points if ssthresh < 2**30]
    if finite:
        axis.step(*zip(*finite), where="post", color="#d62728", linewidth=2.0, linestyle="--", label="ssthresh")


def _draw_samples(axis, samples) -> None:
    times = [s.time for s in samples]
    _draw_windows(axis, [(s.time, s.cwnd, s.ssthresh) for s in samples])
    axis.set_ylabel("bytes")
    axis.yaxis.set_major_formatter(_thousands())
    right = axis.twinx()
    timed = [(s.time, s.srtt * 1000) for s in samples if s.srtt]
    if timed:
        right.plot(*zip(*timed), color="#2ca02c", linewidth=2.0, label="smoothed RTT")
    right.step(times, [max(s.rto * 1000, 0.001) for s in samples], where="post", color="#7f7f7f", linewidth=2.0,
               linestyle=":", label="RTO")
    # A log scale: a sub-millisecond RTT and an RTO of 200 ms or more must both stay readable.
    right.set_yscale("log")
    right.set_ylabel("milliseconds (log)")
    right.grid(False)
    lines = axis.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize=FONT_SIZE - 2, framealpha=0.9)


class WindowSeries:
    """cwnd and ssthresh of one connection over time, for `render_windows`: `points` are
    (seconds, cwnd bytes, ssthresh bytes); `marks` are horizontal lines worth naming, such as
    CUBIC's W_max, as (label, bytes)."""

    def __init__(self, label: str, points: list[tuple[float, int, int]], mss: int,
                 marks: tuple[tuple[str, float], ...] = ()) -> None:
        self.label = label
        self.points = points
        self.mss = mss
        self.marks = marks


def render_windows(series: list[WindowSeries], path: str, title: str, image_format: str | None = None) -> None:
    """cwnd over time, one panel per connection side by side on a shared scale, in segments (as
    ss -i counts): slow start, the reduction at a loss and the growth after it can be compared
    at a glance (`ustack lab congestion`: Reno beside CUBIC). The same figure style as `render`."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1,
                                "svg.fonttype": "none", "axes.grid": True, "grid.alpha": 0.3}):
        figure = Figure(figsize=(7 * len(series), 7))
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(series), sharey=True, squeeze=False)[0]
        for axis, one in zip(axes, series):
            _draw_windows(axis, one.points, one.mss)
            for label, value in one.marks:
                axis.axhline(value / one.mss, color="#7f7f7f", linewidth=1.5, linestyle=":", label=label)
            axis.set_title(one.label)
            axis.set_xlabel("time (s)")
            axis.legend(loc="lower right", fontsize=FONT_SIZE - 2, framealpha=0.9)
        axes[0].set_ylabel("segments")
        figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(path, format=image_format, dpi=100)
