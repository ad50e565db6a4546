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
ARROW_ROW = 46
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


def _arrow(arrow: Arrow, y: float, numbering: Numbering) -> list[str]:
    colour, dash = STYLE.get(arrow.kind, STYLE["normal"])
    start_x, end_x = (LEFT_X, RIGHT_X) if arrow.from_side == LEFT else (RIGHT_X, LEFT_X)
    direction = 1 if end_x > start_x else -1
    slope = SLANT / (end_x - start_x) * direction  # drop per pixel travelled
    parts = []
    middle_x = (LEFT_X + RIGHT_X) / 2
    if arrow.kind == LOST:
        stop_x = middle_x + direction * 90
        stop_y = y + abs(stop_x - start_x) * slope
        parts.append(_line(start_x, y, stop_x, stop_y, colour, dash))
        for dx, dy in ((-7, -7), (-7, 7)):
            parts.append(_line(stop_x + dx, stop_y + dy, stop_x - dx, stop_y - dy, colour, width=2.4))
    else:
        parts.append(_line(start_x, y, end_x, y + SLANT, colour, dash))
        parts.append(_arrowhead(end_x, y + SLANT, direction, slope, colour))
    # A lost arrow stops half way: its words go next to its sender, clear of the cross.
    text_x, anchor = middle_x, "middle"
    if arrow.kind == LOST:
        text_x, anchor = start_x + 14 * direction, "start" if direction > 0 else "end"
    text_y = y + abs(text_x - start_x) * slope
    parts.append(_text(text_x, text_y - 6, arrow_label(arrow, numbering), 13, anchor, fill=colour))
    note = f"({arrow.note})" if arrow.note else ""
    below = " ".join(text for text in (options_label(arrow, numbering), note) if text)
    if below:
        parts.append(_text(text_x, text_y + 16, below, 11, anchor, fill="#555"))
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

