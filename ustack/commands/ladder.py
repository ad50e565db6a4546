"""`ustack ladder FILE.pcap`: the ladder diagram of one TCP connection in a capture.

Text in the terminal by default, Mermaid with --mermaid, and an SVG file for slides with --svg.
The states are inferred from the segments (a capture holds nothing else) and marked so.
"""

from __future__ import annotations

import os
import sys

from ustack.trace.infer import NoConnection, build_ladder
from ustack.trace.pcap_source import read_capture
from ustack.trace.render_mermaid import render_mermaid
from ustack.trace.render_svg import render_svg
from ustack.trace.render_text import render_text
from ustack.wire.pcap import read_records

from .capture_file import cut_short_note, read_capture_file
from .arguments import check_output_file, path_value, port_value
from .errors import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ladder",
        help="draw one TCP connection of a pcap file as a ladder (sequence) diagram",
        description="Draw one TCP connection of a pcap file as a ladder diagram: one arrow per "
        "segment, each side's state where it changes (inferred from the segments, marked *).",
    )
    parser.add_argument("file", metavar="FILE.pcap")
    parser.add_argument(
        "--conn", metavar="PORT", type=port_value,
        help="the connection with this port on either side (default: the first one opened by a SYN)",
    )  # fmt: skip
    parser.add_argument(
        "--relative", action="store_true", help="sequence numbers relative to each side's ISN, as tcpdump without -S"
    )
    parser.add_argument("--svg", metavar="FILE", type=path_value,
                        help="also write the diagram as a standalone SVG file")
    parser.add_argument("--mermaid", action="store_true", help="print a Mermaid sequence diagram instead of text")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.svg:
        check_output_file(args.svg)
    blob = read_capture_file(args.file)
    capture = read_capture(blob)
    _, records = read_records(blob)
    whole = [len(record.data) for record in records]
    note = cut_short_note(args.file, blob, len(whole), sum(whole))
    try:
        ladder = build_ladder(capture.observations, port=args.conn, source=args.file)
    except NoConnection as error:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(capture.skipped.items()))
        raise CliError(f"{error} in {args.file}" + (f" (packets skipped: {skipped})" if skipped else "")) from None
    if args.svg:
        try:
            with open(args.svg, "w", encoding="utf-8") as svg_file:
                svg_file.write(render_svg(ladder, relative=args.relative))
        except OSError as error:
            raise CliError(f"cannot write {args.svg}: {error.strerror}") from None
    if args.mermaid:
        output = render_mermaid(ladder, args.relative)
    else:
        # Colour only for a person at a terminal (and never when NO_COLOR is set, no-color.org).
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        output = render_text(ladder, args.relative, colour=colour)
    sys.stdout.write(output)
    if note is not None:  # the diagram shows what is there; say that the file stops early
        sys.stdout.flush()
        print(f"ustack ladder: {note}", file=sys.stderr)
    return 0
