"""Ladder diagrams of TCP connections: what each side sent, and the state it was in.

    model.py           the diagram (Ladder, Arrow, StateMark), independent of its source
    infer.py           from the segments of a capture: which connection, what each segment was
                       (retransmission, duplicate, lost), and each side's inferred state
    pcap_source.py     a pcap file -> the segments infer.py reads
    recorder.py        LadderRecorder: the same from a running stack, with its exact states
    labels.py          the words on the arrows, shared by the renderers
    render_text.py     the terminal (100 columns)
    render_svg.py      a standalone SVG for slides
    render_mermaid.py  a Mermaid sequenceDiagram
"""

from __future__ import annotations

from .infer import NoConnection, Observation, build_ladder
from .model import LEFT, RIGHT, Arrow, Endpoint, Ladder, StateMark
from .recorder import LOCAL, REMOTE, LadderRecorder
from .render_mermaid import render_mermaid
from .render_svg import render_svg
from .render_text import render_text

__all__ = [
    "LEFT",
    "LOCAL",
    "REMOTE",
    "RIGHT",
    "Arrow",
    "Endpoint",
    "Ladder",
    "LadderRecorder",
    "NoConnection",
    "Observation",
    "StateMark",
    "build_ladder",
    "render_mermaid",
    "render_svg",
    "render_text",
]
