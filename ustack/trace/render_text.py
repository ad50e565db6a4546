"""A ladder in the terminal: 100 columns, plain text.

      time  LEFT STATE    |---- segment from left to right --------------->|  RIGHT STATE
                          |<--------------- segment from right to left ----|

One row per segment and one per state change (two changes at the same moment on opposite sides
share a row). Under a segment, its options and what is special about it. Arrows are drawn with
'-' for a new segment, '=' for a retransmission, '~' for a duplicate; a lost segment stops half
way in an 'X'.
"""

from __future__ import annotations

import textwrap

from .labels import Numbering, arrow_label, header_lines, options_label, rows, state_label
from .model import DUPLICATE, LEFT, LOST, RETRANSMISSION, Arrow, Ladder

WIDTH = 100
TIME_WIDTH = 10  # '123.456789'
STATE_WIDTH = 13  # 'SYN-RECEIVED*'
ARROW_WIDTH = WIDTH - (TIME_WIDTH + 1) - (STATE_WIDTH + 1) * 2 - 2  # between the two lifelines

SHAFT = {RETRANSMISSION: "=", DUPLICATE: "~"}  # anything else: '-'
COLOUR = {LOST: "31", RETRANSMISSION: "33", DUPLICATE: "35"}  # ANSI red, yellow, magenta
STATE_COLOUR = "32"  # green
LEGEND = {
    "normal": "--->  segment",
    RETRANSMISSION: "===>  retransmission",
    DUPLICATE: "~~~>  duplicate",
    LOST: "---X  lost",
}


def _row(time: str, left_state: str, middle: str, right_state: str) -> str:
    line = f"{time:>{TIME_WIDTH}} {left_state:<{STATE_WIDTH}} |{middle:<{ARROW_WIDTH}}| {right_state}"
    return line.rstrip()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _arrow_line(arrow: Arrow, label: str | None) -> str:
    """The arrow between the lifelines, with `label` written on its shaft (None: no label)."""
    shaft = SHAFT.get(arrow.kind, "-")
    from_left = arrow.from_side == LEFT
    # The label sits next to the sender's lifeline, two shaft characters away from it.
    words = (f"{shaft * 2} {label} " if from_left else f" {label} {shaft * 2}") if label else ""
    if arrow.kind == LOST:  # stop half way in a cross
        length = ARROW_WIDTH // 2
        fill = shaft * (length - len(words) - 1)
        return words + fill + "X" if from_left else " " * (ARROW_WIDTH - length) + "X" + fill + words
    fill = shaft * (ARROW_WIDTH - len(words) - 1)
    return words + fill + ">" if from_left else "<" + fill + words


def _aligned(text: str, from_side: int) -> list[str]:
    """Words above or under an arrow, wrapped to fit between the lifelines, on the sender's side."""
    pieces = textwrap.wrap(text, ARROW_WIDTH - 4)
    return ["   " + piece if from_side == LEFT else f"{piece:>{ARROW_WIDTH - 3}}" for piece in pieces]


def _clock(seconds: float) -> str:
    """Seconds since the first item, as precise as TIME_WIDTH columns allow (microseconds first)."""
    for decimals in range(6, 0, -1):
        text = f"{seconds:.{decimals}f}"
        if len(text) <= TIME_WIDTH:
            return text
    return f"{seconds:.0f}"


def _paint(text: str, colour: str | None) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m" if colour and text else text


def render_text(ladder: Ladder, relative: bool = False, colour: bool = False) -> str:
    """The diagram as text. `colour=True` adds ANSI colours (for a terminal, never for a file)."""
    numbering = Numbering(ladder, relative)
    start = ladder.start_time
    head = header_lines(ladder)
    if relative:
        head.append("sequence numbers relative to each side's initial sequence number")
    lines = [piece for line in head for piece in textwrap.wrap(line, WIDTH)]
    lines.append("")
    left_title = _clip(ladder.left.title, WIDTH // 2 - TIME_WIDTH - 2)
    right_title = _clip(ladder.right.title, WIDTH // 2 - 2)
    lines.append(f"{'time':>{TIME_WIDTH}} {left_title}".ljust(WIDTH - len(right_title)) + right_title)

    kinds_seen = set()
    for row in rows(ladder):
        if isinstance(row, tuple):
            mark = row[0] or row[1]
            states = [state_label(m) if m else "" for m in row]
            line = _row(_clock(mark.time - start), states[0], "", states[1])
            if colour:  # paint the names only; the padding was measured without escapes
                prefix, rest = line[: TIME_WIDTH + 1], line[TIME_WIDTH + 1 :]
                if states[0]:
                    rest = rest.replace(states[0], _paint(states[0], STATE_COLOUR), 1)
                if states[1]:
                    rest = rest[: -len(states[1])] + _paint(states[1], STATE_COLOUR)
                line = prefix + rest
            lines.append(line)
            continue
        kinds_seen.add(row.kind)
        paint = COLOUR.get(row.kind) if colour else None
        label = arrow_label(row, numbering)
        # A lost arrow keeps its words on the line above, so that its cross is really half way.
        fits = len(label) + 6 <= ARROW_WIDTH and row.kind != LOST
        if not fits:
            lines.extend(_paint(_row("", "", piece, ""), paint) for piece in _aligned(label, row.from_side))
        lines.append(_paint(_row(_clock(row.time - start), "", _arrow_line(row, label if fits else None), ""), paint))
        options = options_label(row, numbering)
        note = f"({row.note})" if row.note else ""
        if options and note and len(options) + len(note) + 1 <= ARROW_WIDTH - 4:
            extra = [f"{options} {note}"]
        else:
            extra = [text for text in (options, note) if text]
        for text in extra:
            lines.extend(_paint(_row("", "", piece, ""), paint) for piece in _aligned(text, row.from_side))

    lines.append("")
    legend = [LEGEND[kind] for kind in ("normal", RETRANSMISSION, DUPLICATE, LOST) if kind in kinds_seen]
    if legend:
        lines.append("    ".join(legend))
    return "\n".join(lines) + "\n"
