"""A ladder as a Mermaid sequence diagram (https://mermaid.js.org/syntax/sequenceDiagram.html).

Paste the output into any Markdown that renders Mermaid. One message per segment: a solid arrow
for a new segment, a dotted one for a retransmission or duplicate, one ending in a cross for a lost
segment; each state change is a note over its side's lifeline.
"""

from __future__ import annotations

from .labels import Numbering, arrow_label, header_lines, options_label, state_label
from .model import DUPLICATE, LEFT, LOST, RETRANSMISSION, Arrow, Ladder, StateMark

# Mermaid arrows: ->> solid with head, -->> dotted with head, -x solid ending in a cross.
ARROW = {RETRANSMISSION: "-->>", DUPLICATE: "-->>", LOST: "-x"}
PARTICIPANT = {LEFT: "L", 1: "R"}


def _safe(text: str) -> str:
    """Mermaid reads ';' as a line break and '#...;' as an entity; '<' '>' may be taken as HTML."""
    return (
        text.replace("#", "no. ").replace(";", ",").replace("<", "(").replace(">", ")").replace("%%", "%")
    )


def _message(arrow: Arrow, numbering: Numbering) -> str:
    sender, receiver = PARTICIPANT[arrow.from_side], PARTICIPANT[1 - arrow.from_side]
    words = [arrow_label(arrow, numbering), options_label(arrow, numbering)]
    if arrow.note:
        words.append(f"({arrow.note})")
    text = _safe(" ".join(word for word in words if word))
    return f"    {sender}{ARROW.get(arrow.kind, '->>')}{receiver}: {text}"


def render_mermaid(ladder: Ladder, relative: bool = False) -> str:
    numbering = Numbering(ladder, relative)
    lines = ["sequenceDiagram"]
    lines.extend(f"    %% {line}" for line in header_lines(ladder))  # comments: any text goes
    for side in (LEFT, 1):
        lines.append(f"    participant {PARTICIPANT[side]} as {_safe(ladder.endpoint(side).title)}")
    for item in ladder.items:
        if isinstance(item, StateMark):
            lines.append(f"    Note over {PARTICIPANT[item.side]}: {_safe(state_label(item))}")
        else:
            lines.append(_message(item, numbering))
    return "\n".join(lines) + "\n"
