"""`ustack plot FILE.pcap --svg F | --png F`: the time-sequence graph of one TCP connection
(tcptrace's, Wireshark's "Stevens" graph): the data segments as bars over time, the ACK line, the
receive-window line, SACK blocks, retransmissions and probable losses, for one direction.

    ustack plot run.pcap --svg run.svg                       # the first connection, its data sender
    ustack plot run.pcap --conn '#2' --png two.png           # --conn and --list as in `ustack ladder`
    ustack plot run.pcap --direction client --from 1s --to 2s --svg part.svg
    tcpdump -U -w - -i ustun0 | ustack plot - --svg live.svg

The capture is read, and the connection chosen, exactly as `ustack ladder` does (one owner:
ustack/commands/ladder.py); the data is ustack.trace.plot's, the drawing ustack.trace.plot_render's.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from ustack.trace.infer import mark_probable_losses
from ustack.trace.model import LEFT, RIGHT

from .arguments import check_output_file, path_value
from .errors import CliError
from .ladder import (add_connection_selection, clipped, load_connection, print_connections, say_cut_short,
                     say_which)

DIRECTIONS = {"client": LEFT, "server": RIGHT, "auto": None}
# infer.mark_probable_losses compares segments pairwise: 4,000 take about 5 s on a laptop.
LOSS_INFERENCE_LIMIT = 3000


def with_probable_losses(ladder):
    """The ladder with its probable losses marked (infer.py), if it is short enough to do it quickly."""
    if len(ladder.arrows) > LOSS_INFERENCE_LIMIT:
        return ladder
    return dataclasses.replace(ladder, items=mark_probable_losses(ladder.arrows))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw a time-sequence graph (tcptrace style) of one TCP connection of a pcap file",
        description="Draw a time-sequence graph of one direction of one TCP connection in a pcap file: "
        "data segments, the ACK and receive-window lines, SACK blocks, retransmissions and probable losses.",
    )
    add_connection_selection(parser)
    parser.add_argument("--direction", choices=sorted(DIRECTIONS), default="auto",
                        help="whose data to draw: the client's (the SYN's sender), the server's, or auto "
                             "(the side that sent more; the default)")
    parser.add_argument("--svg", metavar="FILE", type=path_value, help="write the graph as an SVG file")
    parser.add_argument("--png", metavar="FILE", type=path_value, help="write the graph as a PNG file")
    parser.set_defaults(run=run)


def run(args) -> int:
    if not args.list and not (args.svg or args.png):
        raise CliError("say where to draw it: --svg FILE and/or --png FILE (or --list)")
    for output in (args.svg, args.png):
        if output:
            check_output_file(output)
    # The states are not drawn, and inferring them (like the probable losses) costs more than
    # linear time: a long capture is read without them, and its losses only up to a bound.
    loaded = load_connection(args, states=False, infer_losses=False)
    if args.list:
        print_connections(loaded.connections, sys.stdout)
        say_cut_short(loaded.note, "plot")
        return 0
    try:
        from ustack.trace.plot import time_sequence
        from ustack.trace.plot_render import render
    except ImportError as error:  # matplotlib is the `plot` extra
        raise CliError(f"plotting needs matplotlib ({error}): pip install 'ustack[plot]'") from None
    whole = with_probable_losses(loaded.ladder)
    ladder = whole
    if args.range_from is not None or args.range_to is not None:
        ladder = clipped(whole, args.range_from, args.range_to)
        if whole is loaded.ladder:  # too long for it as a whole: the part on its own, then
            ladder = with_probable_losses(ladder)
    graph = time_sequence(ladder, DIRECTIONS[args.direction])
    if len(ladder.arrows) > LOSS_INFERENCE_LIMIT:  # (then the whole connection is too)
        print(f"ustack plot: {len(ladder.arrows)} segments: probable losses are not inferred past "
              f"{LOSS_INFERENCE_LIMIT} (only retransmissions are marked); draw a part with --from/--to", file=sys.stderr)
    if graph.aggregated:
        print(f"ustack plot: {len(loaded.ladder.arrows)} segments: {graph.aggregated} "
              "(draw a part with --from/--to to see each one)", file=sys.stderr)
    for output, image_format in ((args.svg, "svg"), (args.png, "png")):
        if output:
            try:
                render(graph, output, image_format=image_format)
            except OSError as error:
                raise CliError(f"cannot write {output}: {error.strerror or error}") from None
    if loaded.chosen is None and len(loaded.connections) > 1:
        say_which(loaded.ladder, loaded.connections, loaded.name, args.file, "plot")
    retransmitted = sum(1 for bar in graph.segments if bar.kind != "normal")
    print(f"{graph.title}: {len(graph.segments)} segments ({retransmitted} retransmitted, duplicate or lost), "
          f"{len(graph.acks)} ACKs, {len(graph.sacks)} SACK blocks")
    say_cut_short(loaded.note, "plot")
    return 0


# --- ustack serve --plot DIR ------------------------------------------------------------------


def add_plot_argument(parser) -> None:
    parser.add_argument("--plot", metavar="DIR", type=path_value,
                        help="write each connection's time-sequence graph, with its cwnd, ssthresh, RTT and RTO "
                             "below, to DIR as an SVG file when it ends (DIR is created if missing), named "
                             "N-OURADDR.PORT-PEERADDR.PORT.svg with IPv6 colons as '-': 2-fd00-77--2.80-fd00-77--1.41234.svg")


def live_plots(args, output):
    """The LivePlots that --plot asks for (also printing ladders if --ladder is given), or None."""
    if not getattr(args, "plot", None):
        return None
    try:
        import matplotlib  # noqa: F401  (checked now, not when the first connection ends)
    except ImportError as error:
        raise CliError(f"--plot needs matplotlib ({error}): pip install 'ustack[plot]'") from None
    try:
        os.makedirs(args.plot, exist_ok=True)
    except OSError as error:
        raise CliError(f"--plot {args.plot}: {error.strerror or error}") from None
    from ustack.trace.plot_live import LivePlots

    text = args.ladder is not None and args.ladder is not False
    port = args.ladder or None if text else None
    return LivePlots(args.plot, output=output, port=port, text=text, relative=args.relative)
