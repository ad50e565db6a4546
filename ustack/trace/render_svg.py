"""A ladder as a standalone SVG image for slides: no scripts, no fonts or images to fetch.

Two vertical lifelines, one slanted arrow per segment (time flows down), the flags and numbers
above each arrow and the options and notes under it, a box on the lifeline at each state change
(dashed when the state was inferred), and a cross where a lost segment ends. Every piece of text
goes through `escape` so the file is well-formed XML whatever the labels hold.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from .labels import Numbering, arrow_label, header_lines, options_label, rows
from .model import DUPLICATE, LEFT, LOST, RETRANSMISSION, Arrow, Ladder, StateMark

WIDTH = 1000
LEFT_X = 240
RIGHT_X = 860
TOP = 110  # below the titles
ARROW_ROW = 52  # an arrow, its label above and its options below, with LABEL_GAP on each side
LABEL_SIZE = 13
NOTE_SIZE = 11
LABEL_GAP = 4  # pixels between a text and the line it describes
ARROW_SPAN_LOST = 300  # a lost arrow reaches at least this far before its cross
CROSS_CLEARANCE = 24  # pixels between the end of a lost arrow's words and its cross
STATE_ROW = 30
SLANT = 14  # how far an arrow falls while it crosses: the time it spends on the wire, symbolically
FONT = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\""

STYLE = {  # kind -> (colour, dash pattern)
    "normal": ("#1f3b73", ""),
    RETRANSMISSION: ("#c05800", "8 4"),
    DUPLICATE: ("#7a3fa0", "2 4"),
    LOST: ("#b00020", ""),
}
LEGEND_TEXT = {
    "normal": "segment",
    RETRANSMISSION: "retransmission",
    DUPLICATE: "duplicate",
    LOST: "lost",
}


def _text(
    x: float, y: float, content: str, size: int = 13, anchor: str = "middle", fill: str = "#000", extra: str = ""
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" {FONT}{extra}>'
        f"{escape(content)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, dash: str = "", width: float = 1.6) -> str:
    dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="{width}"{dash_attribute}/>'
    )


def _arrowhead(x: float, y: float, direction: int, slope: float, colour: str) -> str:
    """A filled triangle pointing along the arrow, its tip at (x, y)."""
    back = 10 * direction  # direction: +1 pointing right, -1 pointing left
    points = [(x, y), (x - back, y - slope * back - 4), (x - back, y - slope * back + 4)]
    text = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polygon points="{text}" fill="{colour}"/>'


def _text_width(content: str, size: int) -> float:
    """The width of monospaced text: DejaVu Sans Mono's advance is 0.602 em (a little more, to be safe)."""
    return len(content) * size * 0.61


def _line_y_range(start_x: float, start_y: float, slope: float, low_x: float, high_x: float) -> tuple[float, float]:
    """The highest and lowest y of the line through (start_x, start_y) with `slope`, over x in [low_x, high_x]."""
    ends = (start_y + (low_x - start_x) * slope, start_y + (high_x - start_x) * slope)
    return min(ends), max(ends)


def _span(x: float, width: float, anchor: str) -> tuple[float, float]:
    if anchor == "middle":
        return x - width / 2, x + width / 2
    return (x, x + width) if anchor == "start" else (x - width, x)


def _arrow(arrow: Arrow, y: float, numbering: Numbering) -> list[str]:
    colour, dash = STYLE.get(arrow.kind, STYLE["normal"])
    start_x, end_x = (LEFT_X, RIGHT_X) if arrow.from_side == LEFT else (RIGHT_X, LEFT_X)
    direction = 1 if end_x > start_x else -1
    slope = SLANT / (end_x - start_x)  # y grows by this per unit of x (signed: the arrow always falls)
    middle_x = (LEFT_X + RIGHT_X) / 2
    label = arrow_label(arrow, numbering)
    note = f"({arrow.note})" if arrow.note else ""
    below = " ".join(text for text in (options_label(arrow, numbering), note) if text)
    text_x, anchor = middle_x, "middle"
    parts = []
    if arrow.kind == LOST:
        # A lost arrow stops part way in a cross: its words start next to its sender and the
        # cross comes after the longest of them, so that it never covers them.
        text_x, anchor = start_x + 14 * direction, "start" if direction > 0 else "end"
        longest = max(_text_width(label, LABEL_SIZE), _text_width(below, NOTE_SIZE) if below else 0.0)
        reach = max(ARROW_SPAN_LOST, 14 + longest + CROSS_CLEARANCE)
        stop_x = start_x + direction * min(reach, abs(end_x - start_x) - CROSS_CLEARANCE)
        stop_y = y + (stop_x - start_x) * slope
        parts.append(_line(start_x, y, stop_x, stop_y, colour, dash))
        for dx, dy in ((-7, -7), (-7, 7)):
            parts.append(_line(stop_x + dx, stop_y + dy, stop_x - dx, stop_y - dy, colour, width=2.4))
    else:
        parts.append(_line(start_x, y, end_x, y + SLANT, colour, dash))
        parts.append(_arrowhead(end_x, y + SLANT, direction, slope * direction, colour))
    # Each text keeps LABEL_GAP pixels from the line under its whole width: its baseline goes
    # above the highest point of the line there (plus the descent of the letters), or below the
    # lowest (plus their ascent).
    low, high = _span(text_x, _text_width(label, LABEL_SIZE), anchor)
    top, _ = _line_y_range(start_x, y, slope, low, high)
    parts.append(_text(text_x, top - LABEL_GAP - 0.25 * LABEL_SIZE, label, LABEL_SIZE, anchor, fill=colour))
    if below:
        low, high = _span(text_x, _text_width(below, NOTE_SIZE), anchor)
        _, bottom = _line_y_range(start_x, y, slope, low, high)
        parts.append(_text(text_x, bottom + LABEL_GAP + 0.75 * NOTE_SIZE, below, NOTE_SIZE, anchor, fill="#555"))
    return parts


def _state_box(mark: StateMark, y: float) -> list[str]:
    x = LEFT_X if mark.side == LEFT else RIGHT_X
    width = 9 * len(mark.state.value) + 16
    dash = ' stroke-dasharray="4 3"' if mark.inferred else ""
    title = f"<title>{escape(mark.cause)}</title>" if mark.cause else ""
    return [
        f'<g>{title}<rect x="{x - width / 2:.1f}" y="{y - 11:.1f}" width="{width}" height="22" rx="5" '
        f'fill="#eef4e8" stroke="#4a7a2c"{dash}/>',
        _text(x, y + 4.5, mark.state.value, 13, fill="#2d5016") + "</g>",
    ]


def render_svg(ladder: Ladder, relative: bool = False) -> str:
    numbering = Numbering(ladder, relative)
    start = ladder.start_time
    body: list[str] = []
    y = TOP
    kinds_seen: set[str] = set()
    for item in rows(ladder):
        if isinstance(item, tuple):
            y += STATE_ROW / 2
            for mark in item:
                if mark is not None:
                    body.extend(_state_box(mark, y))
            y += STATE_ROW / 2
            continue
        time_text = f"{item.time - start:.6f}"
        kinds_seen.add(item.kind)
        y += ARROW_ROW / 2
        body.append(_text(16, y + 4, time_text, 12, anchor="start", fill="#666"))
        body.extend(_arrow(item, y - SLANT / 2, numbering))
        y += ARROW_ROW / 2
    bottom = y + 20

    head = header_lines(ladder)
    if relative:
        head.append("sequence numbers relative to each side's initial sequence number")
    parts = [
        f'<rect x="0" y="0" width="{WIDTH}" height="{bottom + 70:.0f}" fill="#ffffff"/>',
        _text(16, 22, head[0], 14, anchor="start"),
    ]
    for number, line in enumerate(head[1:]):
        line = line.replace("marked *", "in dashed boxes")
        parts.append(_text(16, 40 + 16 * number, line, 11, anchor="start", fill="#555"))
    for side, x in ((LEFT, LEFT_X), (1, RIGHT_X)):
        endpoint = ladder.endpoint(side)
        parts.append(_line(x, TOP - 8, x, bottom, "#888", width=2))
        parts.append(_text(x, TOP - 32, endpoint.name, 15, extra=' font-weight="bold"'))
        if endpoint.label:
            parts.append(_text(x, TOP - 15, endpoint.label, 12, fill="#555"))
    parts.append(_text(16, TOP - 15, "time (s)", 12, anchor="start", fill="#666"))
    parts.extend(body)
    legend_x = 16.0
    for kind in ("normal", RETRANSMISSION, DUPLICATE, LOST):
        if kind not in kinds_seen:
            continue
        colour, dash = STYLE[kind]
        parts.append(_line(legend_x, bottom + 36, legend_x + 40, bottom + 36, colour, dash))
        parts.append(_text(legend_x + 48, bottom + 40, LEGEND_TEXT[kind], 12, anchor="start", fill=colour))
        legend_x += 60 + 8 * len(LEGEND_TEXT[kind]) + 24
    height = bottom + 70
    title = escape(f"TCP ladder: {ladder.left.name} <-> {ladder.right.name}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}">\n<title>{title}</title>\n' + "\n".join(parts) + "\n</svg>\n"
    )

