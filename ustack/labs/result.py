"""What a lab hands back: its scenes (each a ladder, what `ss` said, the steps taken), the
explanation, and structured facts that the tests check.

    result = lab.run(options)
    print(result.text)                          # what `ustack lab NAME` prints
    result.scenes[0].ustack_states              # ['CLOSED', 'SYN-SENT', 'ESTABLISHED', ...] exact
    result.scenes[0].kernel_states              # the kernel's, inferred from the segments
    result.scenes[0].kernel_ss_states           # the kernel's, as `ss` printed them (Linux names)
    result.scenes[0].segments                   # SegmentFact(sender, flags, seq, ack, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..trace import LEFT, RIGHT, Ladder
from ..trace.model import LOST, RETRANSMISSION
from ..wire.text import tcpdump_flags

RULE = "=" * 100
SIDE_NAMES = {LEFT: "ustack", RIGHT: "kernel"}


@dataclass
class SsSnapshot:
    """One run of `ss` (the kernel's, in the namespace) or `ustack ss`, at a moment of the lab."""

    moment: str  # 'while the final ACK is lost'
    command: str  # the command line, as a student would type it
    output: str
    side: str  # 'kernel' or 'ustack'
    states: list[str]  # the State column, in ss's spelling (ESTAB, SYN-RECV, TIME-WAIT, ...)

    @property
    def text(self) -> str:
        body = "\n".join("    " + line for line in self.output.rstrip("\n").splitlines())
        return f"{self.side} side, {self.moment}:\n  $ {self.command}\n{body}\n"


@dataclass(frozen=True)
class SegmentFact:
    """One segment of a scene's ladder, for tests: who sent it, its flags as tcpdump writes them."""

    time: float
    sender: str  # 'ustack' or 'kernel'
    flags: str  # 'S', 'S.', '.', 'F.', 'R', 'P.', 'R.', 'P.U' ...
    seq: int
    ack: int
    length: int
    window: int
    kind: str  # 'normal', 'retransmission', 'duplicate', 'lost'
    note: str

    @property
    def lost(self) -> bool:
        return self.kind == LOST

    @property
    def retransmission(self) -> bool:
        return self.kind == RETRANSMISSION or "retransmission" in self.note


@dataclass
class Scene:
    title: str
    steps: list[str] = field(default_factory=list)
    snapshots: list[SsSnapshot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # arithmetic and remarks under the ladder
    ladder: Ladder | None = None
    ladder_text: str = ""
    facts: dict = field(default_factory=dict)  # lab-specific numbers (timer values, counts, ...)

    # --- facts for tests and summaries ---
    @property
    def ustack_states(self) -> list[str]:
        """ustack's states in order, exactly as the core reported them."""
        return self.ladder.states_of(LEFT) if self.ladder else []

    @property
    def kernel_states(self) -> list[str]:
        """The kernel's states in order, inferred from the segments (RFC names)."""
        return self.ladder.states_of(RIGHT) if self.ladder else []

    @property
    def kernel_ss_states(self) -> list[str]:
        return [state for snapshot in self.snapshots if snapshot.side == "kernel" for state in snapshot.states]

    @property
    def ustack_ss_states(self) -> list[str]:
        return [state for snapshot in self.snapshots if snapshot.side == "ustack" for state in snapshot.states]

    @property
    def segments(self) -> list[SegmentFact]:
        if self.ladder is None:
            return []
        return [
            SegmentFact(arrow.time - self.ladder.start_time, SIDE_NAMES[arrow.from_side], tcpdump_flags(arrow.flags),
                        arrow.seq, arrow.ack, arrow.length, arrow.window, arrow.kind, arrow.note)
            for arrow in self.ladder.arrows
        ]

    def segments_from(self, sender: str, flags: str | None = None) -> list[SegmentFact]:
        return [s for s in self.segments if s.sender == sender and (flags is None or s.flags == flags)]

    @property
    def text(self) -> str:
        lines = [f"--- {self.title} ---", ""]
        if self.steps:
            lines.append("What the lab did:")
            lines.extend(f"  {number}. {step}" for number, step in enumerate(self.steps, 1))
            lines.append("")
        if self.ladder_text:
            lines.append("Ladder (ustack on the left, states exact; the kernel on the right, states marked * inferred):")
            lines.append("")
            lines.append(self.ladder_text.rstrip("\n"))
            lines.append("")
        if self.snapshots:
            lines.append("What ss said at the key moments:")
            for snapshot in self.snapshots:
                lines.append(snapshot.text)
        if self.notes:
            lines.extend(self.notes)
            lines.append("")
        return "\n".join(lines)


@dataclass
class LabResult:
    name: str
    summary: str
    scenes: list[Scene]
    explanation: str  # what to look for and why, with the RFC sections
    namespace: str = ""
    pcap: str | None = None
    svg: str | None = None
    setup: list[str] = field(default_factory=list)  # steps taken before the first scene

    def scene(self, index: int = 0) -> Scene:
        return self.scenes[index]

    @property
    def text(self) -> str:
        lines = [RULE, f"ustack lab {self.name}: {self.summary}", RULE, ""]
        if self.setup:
            lines.append("Set-up:")
            lines.extend(f"  - {step}" for step in self.setup)
            lines.append("")
        lines.extend(scene.text for scene in self.scenes)
        lines.append("--- What it shows ---")
        lines.append("")
        lines.append(self.explanation.strip("\n"))
        lines.append("")
        if self.pcap:
            lines.append(f"Capture kept in {self.pcap} (tcpdump -nn -S -r {self.pcap}, or ustack ladder {self.pcap}).")
        if self.svg:
            lines.append(f"Ladder drawn in {self.svg}.")
        lines.append(f"Namespace {self.namespace} and everything in it have been removed.")
        return "\n".join(lines) + "\n"
