"""The RFC 9293 state diagram as SVG, for the web view: every arrow comes from the core's own
transition table (ustack.tcp.state: FIGURE_5, the arrows of RFC 9293 Figure 5, and NOT_IN_FIGURE,
the resets, aborts and timeouts it leaves out), the table scripts/gen_state_diagram.py draws
docs/state-diagram.md from. Only where each state sits is decided here.

The page lights states and arrows by their ids: `state-SYN_SENT`, `edge-ESTABLISHED-FIN_WAIT_1`.
"""

from __future__ import annotations

from html import escape

from ..tcp.state import FIGURE_5, NOT_IN_FIGURE, State

WIDTH, HEIGHT = 900, 640
BOX_WIDTH, BOX_HEIGHT = 170, 44

# Where each state sits, roughly as in RFC 9293 Figure 5: opening at the top, closing below.
POSITIONS: dict[State, tuple[int, int]] = {
    State.CLOSED: (450, 40),
    State.LISTEN: (450, 140),
    State.SYN_RECEIVED: (190, 240),
    State.SYN_SENT: (710, 240),
    State.ESTABLISHED: (450, 340),
    State.FIN_WAIT_1: (190, 440),
    State.CLOSING: (450, 440),
    State.CLOSE_WAIT: (710, 440),
    State.FIN_WAIT_2: (190, 560),
    State.TIME_WAIT: (450, 560),
    State.LAST_ACK: (710, 560),
}

# Long arrows back to CLOSED go round the outside instead of across the figure.
_AROUND = {
    (State.TIME_WAIT, State.CLOSED): [(450, 620), (20, 620), (20, 40)],
    (State.LAST_ACK, State.CLOSED): [(880, 560), (880, 40)],
}


def state_id(state: State) -> str:
    return f"state-{state.name}"


def edge_id(old: State, new: State) -> str:
    return f"edge-{old.name}-{new.name}"


def _border(centre: tuple[float, float], towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from a box's centre towards a point leaves the box."""
    (x, y), (tx, ty) = centre, towards
    dx, dy = tx - x, ty - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(BOX_WIDTH / 2 / abs(dx) if dx else float("inf"), BOX_HEIGHT / 2 / abs(dy) if dy else float("inf"))
    return x + dx * scale, y + dy * scale


def _edge_path(old: State, new: State, bend: float) -> str:
    if (old, new) in _AROUND:
        points = _AROUND[(old, new)]
        start = _border(POSITIONS[old], points[0])
        end = _border(POSITIONS[new], points[-1])
        if points[-1][1] == POSITIONS[new][1]:  # come in from the side
            end = (POSITIONS[new][0] + (BOX_WIDTH / 2 if points[-1][0] > POSITIONS[new][0] else -BOX_WIDTH / 2),
                   POSITIONS[new][1])
        return "M {:.0f} {:.0f} ".format(*start) + " ".join(f"L {x} {y}" for x, y in points) + \
            " L {:.0f} {:.0f}".format(*end)
    (x1, y1), (x2, y2) = POSITIONS[old], POSITIONS[new]
    # The control point is pushed sideways, so that A->B and B->A are two distinct curves.
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1)
    cx, cy = mx - (y2 - y1) / length * bend, my + (x2 - x1) / length * bend
    sx, sy = _border((x1, y1), (cx, cy))
    ex, ey = _border((x2, y2), (cx, cy))
    return f"M {sx:.0f} {sy:.0f} Q {cx:.0f} {cy:.0f} {ex:.0f} {ey:.0f}"


def state_diagram_svg() -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="state-diagram" '
             'role="img" aria-label="RFC 9293 TCP state diagram">',
             '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>']
    for table, kind in ((NOT_IN_FIGURE, "extra"), (FIGURE_5, "figure")):
        for (old, new), cause in table.items():
            if kind == "extra" and (old, new) in FIGURE_5:
                continue  # drawn once, as the figure's arrow
            bend = 30 if (new, old) in FIGURE_5 or (new, old) in NOT_IN_FIGURE else (45 if kind == "extra" else 0)
            parts.append(f'<path id="{edge_id(old, new)}" class="edge {kind}" d="{_edge_path(old, new, bend)}" '
                         f'data-cause="{escape(cause)}" marker-end="url(#head)"><title>{escape(old.value)} \u2192 '
                         f'{escape(new.value)}: {escape(cause)}</title></path>')
    for state, (x, y) in POSITIONS.items():
        parts.append(f'<g id="{state_id(state)}" class="state" data-state="{state.value}">'
                     f'<rect x="{x - BOX_WIDTH // 2}" y="{y - BOX_HEIGHT // 2}" width="{BOX_WIDTH}" '
                     f'height="{BOX_HEIGHT}" rx="10"/>'
                     f'<text x="{x}" y="{y + 7}" text-anchor="middle">{state.value}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)
