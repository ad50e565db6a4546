"""`ustack ladder FILE.pcap`: the ladder diagram of one TCP connection in a capture.

Text in the terminal by default, Mermaid with --mermaid, and an SVG file for slides with --svg.
The states are inferred from the segments (a capture holds nothing else) and marked so.

    ustack ladder run.pcap --list                 # the connections: number, 4-tuple, packets, duration
    ustack ladder run.pcap --conn '#2'            # the second one (quoted: # starts a shell comment)
    ustack ladder run.pcap --conn 10.77.0.1:40000-10.77.0.2:80
    ustack ladder run.pcap --conn '[fd00:77::1]:40000-[fd00:77::2]:80'
    ustack ladder run.pcap --conn 80              # the one with port 80 (refused if several have it)
    ustack ladder run.pcap --from 100 --to 200    # segments 100 to 200
    ustack ladder run.pcap --from 1.5s --to 2s    # the segments between 1.5 s and 2 s after its start
    tcpdump -U -w - -i ustun0 | ustack ladder -   # a capture from standard input

An SVG has at most SVG_SEGMENT_LIMIT segments: a longer connection (or range) is drawn up to that
many, with a line in the image and on stderr saying which part is drawn and how to draw another.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NamedTuple

from ustack.trace.infer import NoConnection, build_ladder, list_connections
from ustack.trace.model import clip
from ustack.trace.pcap_source import read_capture
from ustack.trace.render_mermaid import render_mermaid
from ustack.trace.render_svg import render_svg
from ustack.trace.render_text import render_text
from ustack.wire.ipv4 import address_text, address_value
from ustack.wire.ipv6 import address6_value, endpoint_text
from ustack.wire.pcap import read_records

from .arguments import check_output_file, path_value, port_value
from .capture_file import cut_short_note, read_capture_file
from .errors import CliError

# 1000 segments make an SVG about 46,000 pixels tall: still scrollable in a browser, unlike the
# 165,000-pixel one of a whole 3 MB transfer. Past that, a range (--from/--to) is the way.
SVG_SEGMENT_LIMIT = 1000


class ConnectionChoice(NamedTuple):
    """What --conn names: a number from --list, a port, or both endpoints."""

    number: int | None = None
    port: int | None = None
    endpoints: tuple[tuple[int, int], tuple[int, int]] | None = None


class RangeEnd(NamedTuple):
    """One end of --from/--to: a segment number or a time in seconds since the connection began."""

    segment: int | None = None
    seconds: float | None = None


# ADDRESS:PORT, an IPv6 address in brackets as ss writes it: [fd00:77::1]:40000
_ENDPOINT = r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):(\d+)"
_FOUR_TUPLE = re.compile(rf"^{_ENDPOINT}\s*(?:-|,|\s|>|<->)\s*{_ENDPOINT}$")


def _address(text: str) -> int | bytes:
    """'10.77.0.1' as an int, '[fd00:77::1]' as 16 bytes: as parsed packets hold them."""
    return address6_value(text[1:-1]) if text.startswith("[") else address_value(text)


def connection_choice(text: str) -> ConnectionChoice:
    text = text.strip()
    if text.startswith("#"):
        number = text[1:]
        if not number.isdigit() or int(number) == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: a connection number is #1, #2, ... (see --list)")
        return ConnectionChoice(number=int(number))
    if match := _FOUR_TUPLE.match(text):
        try:
            one = (_address(match.group(1)), port_value(match.group(2)))
            other = (_address(match.group(3)), port_value(match.group(4)))
        except (ValueError, OSError):
            raise argparse.ArgumentTypeError(f"{text!r} is not ADDRESS:PORT-ADDRESS:PORT") from None
        return ConnectionChoice(endpoints=(one, other))
    return ConnectionChoice(port=port_value(text.removeprefix(":")))


def range_end(text: str) -> RangeEnd:
    """`120` (segment 120) or `1.5s` / `1500ms` (a time since the connection's first packet)."""
    lowered = text.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0)):
        if lowered.endswith(suffix):
            try:
                seconds = float(lowered.removesuffix(suffix)) * scale
            except ValueError:
                break
            if seconds < 0 or seconds != seconds:
                break
            return RangeEnd(seconds=seconds)
    else:
        if lowered.isdigit() and int(lowered) > 0:
            return RangeEnd(segment=int(lowered))
    raise argparse.ArgumentTypeError(f"{text!r} is neither a segment number (1, 2, ...) nor a time (1.5s, 200ms)")


def add_connection_selection(parser) -> None:
    """The arguments that pick one connection (and a stretch of it) out of a capture: one owner
    for the commands that draw a connection (ladder, plot), which load it with load_connection."""
    parser.add_argument("file", metavar="FILE.pcap", help="the capture; - reads it from standard input")
    parser.add_argument("--list", action="store_true",
                        help="list the capture's connections (number, 4-tuple, packets, duration) and stop")
    parser.add_argument(
        "--conn", metavar="WHICH", type=connection_choice,
        help="the connection to draw: '#N' from --list (quoted), A:P-B:Q, or a PORT on either side "
             "(refused with the list if several have it); default: the first opened by a SYN",
    )  # fmt: skip
    parser.add_argument("--from", dest="range_from", metavar="N|TIME", type=range_end,
                        help="draw from segment N (1 = the first), or from TIME since its first packet (1.5s, 200ms)")
    parser.add_argument("--to", dest="range_to", metavar="N|TIME", type=range_end,
                        help="draw up to segment N, or up to TIME (both ends included)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ladder",
        help="draw one TCP connection of a pcap file as a ladder (sequence) diagram",
        description="Draw one TCP connection of a pcap file as a ladder diagram: one arrow per "
        "segment, each side's state where it changes (inferred from the segments, marked *).",
    )
    add_connection_selection(parser)
    parser.add_argument(
        "--relative", action="store_true", help="sequence numbers relative to each side's ISN, as tcpdump without -S"
    )
    parser.add_argument("--svg", metavar="FILE", type=path_value,
                        help=f"also write the diagram as a standalone SVG file (at most {SVG_SEGMENT_LIMIT} segments)")
    parser.add_argument("--mermaid", action="store_true", help="print a Mermaid sequence diagram instead of text")
    parser.set_defaults(run=run)


class Loaded(NamedTuple):
    """A capture read for a command that draws one connection of it (ladder, plot)."""

    name: str  # the file's name, or "standard input"
    connections: list  # ConnectionSummary, as --list numbers them
    chosen: object  # the one --conn named (None: build_ladder's default)
    ladder: object  # its whole Ladder (None with --list)
    note: str | None  # the file is cut short, if it is


def load_connection(args, **build_options) -> Loaded:
    """Read args.file and build the ladder of the connection args.conn names (none with args.list;
    `build_options` go to build_ladder). The one way `ustack ladder` and `ustack plot` read a
    capture: CliError with the reason."""
    name = "standard input" if args.file == "-" else args.file
    blob = read_capture_file(args.file)
    capture = read_capture(blob)
    _, records = read_records(blob)
    whole = [len(record.data) for record in records]
    note = cut_short_note(name, blob, len(whole), sum(whole))
    connections = list_connections(capture.observations)
    if args.list:
        return Loaded(name, connections, None, None, note)
    if not connections:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(capture.skipped.items()))
        raise CliError(f"no TCP connection in {name}" + (f" (packets skipped: {skipped})" if skipped else ""))
    chosen = choose(connections, args.conn, name)
    try:
        ladder = build_ladder(capture.observations, source=name, connection=chosen,
                              port=args.conn.port if args.conn and chosen is None else None, **build_options)
    except NoConnection as error:
        raise CliError(f"{error} in {name}") from None
    return Loaded(name, connections, chosen, ladder, note)


def run(args) -> int:
    if args.svg:
        check_output_file(args.svg)
    name, connections, chosen, ladder, note = load_connection(args)
    if args.list:
        print_connections(connections, sys.stdout)
        say_cut_short(note)
        return 0
    whole = ladder
    if args.range_from is not None or args.range_to is not None:
        ladder = clipped(whole, args.range_from, args.range_to)
    if args.svg:
        drawn = ladder
        if len(ladder.arrows) > SVG_SEGMENT_LIMIT:
            drawn = clipped(whole, args.range_from, args.range_to, limit=SVG_SEGMENT_LIMIT)
            print(f"ustack ladder: {args.svg} draws {drawn.window}: an SVG of more than {SVG_SEGMENT_LIMIT} "
                  "segments is too tall to use; draw another part with --from/--to", file=sys.stderr)
        try:
            with open(args.svg, "w", encoding="utf-8") as svg_file:
                svg_file.write(render_svg(drawn, relative=args.relative))
        except OSError as error:
            raise CliError(f"cannot write {args.svg}: {error.strerror}") from None
    if args.mermaid:
        output = render_mermaid(ladder, args.relative)
    else:
        # Colour only for a person at a terminal (and never when NO_COLOR is set, no-color.org).
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        output = render_text(ladder, args.relative, colour=colour)
    if chosen is None and len(connections) > 1:
        say_which(ladder, connections, name, args.file)
    sys.stdout.write(output)
    say_cut_short(note)
    return 0


def say_which(ladder, connections, name: str, file_argument: str, command: str = "ladder") -> None:
    """Several connections and no --conn '#N': say which one is drawn, and how to see the others."""
    drawn = next((c for c in connections if c.name == f"{ladder.left.name} > {ladder.right.name}"), None)
    which = f"#{drawn.number}, {drawn.name}" if drawn else ladder.left.name
    print(f"ustack {command}: {name} holds {len(connections)} connections; drawing {which} "
          f"(see them with: ustack {command} {file_argument} --list; choose with --conn '#N')", file=sys.stderr)


def say_cut_short(note: str | None, command: str = "ladder") -> None:
    if note is not None:  # the diagram shows what is there; say that the file stops early
        sys.stdout.flush()
        print(f"ustack {command}: {note}", file=sys.stderr)


def choose(connections, choice: ConnectionChoice | None, name: str):
    """The ConnectionSummary that --conn names (None: build_ladder's default, the first SYN)."""
    if choice is None:
        return None
    if choice.number is not None:
        if choice.number > len(connections):
            raise CliError(f"there is no connection #{choice.number} in {name}: it has {len(connections)} "
                           "(see --list)")
        return connections[choice.number - 1]
    if choice.endpoints is not None:
        matching = [c for c in connections if c.has_endpoints(*choice.endpoints)]
        what = "-".join(endpoint_text(address_text(a), p) for a, p in choice.endpoints)
    else:
        matching = [c for c in connections if c.has_port(choice.port)]
        what = f"port {choice.port}"
    if not matching:
        raise CliError(f"no TCP connection with {what} in {name}")
    if len(matching) > 1:
        # Picking the first would quietly draw a connection the user may not mean: list them.
        print(f"ustack ladder: {len(matching)} connections have {what} in {name}; "
              "choose one with --conn '#N' or --conn A:P-B:Q:", file=sys.stderr)
        print_connections(matching, sys.stderr)
        raise SystemExit(2)
    return matching[0]


def print_connections(connections, output) -> None:
    """ --list: one line per connection, numbered as --conn '#N' takes them."""
    print(f"{'#':>4}  {'connection (opener > other side)':<47} {'packets':>8} {'duration':>12}", file=output)
    for connection in connections:
        print(f"{'#' + str(connection.number):>4}  {connection.name:<47} {connection.packets:>8} "
              f"{connection.duration:>10.6f} s", file=output)


def clipped(ladder, range_from: RangeEnd | None, range_to: RangeEnd | None, limit: int | None = None):
    clipped = clip(ladder,
                   first=range_from.segment if range_from else None, last=range_to.segment if range_to else None,
                   start=range_from.seconds if range_from else None, end=range_to.seconds if range_to else None,
                   limit=limit)
    if not clipped.arrows:
        raise CliError(f"--from/--to select no segment of the {len(ladder.arrows)} of this connection")
    return clipped
