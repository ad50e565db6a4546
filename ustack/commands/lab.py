"""`ustack lab list` and `ustack lab NAME [--ipv6] [--pcap FILE] [--svg FILE]`: the teaching labs.

Each lab creates its own network namespace (ust-lab-NAME-PID), runs ustack in this process
against the kernel's TCP, shows one part of RFC 9293 happening, and removes everything at the
end. With --ipv6 the same scenes run over the TUN device's IPv6 addresses. See ustack/labs/ and
docs/tutorial.md.
"""

from __future__ import annotations

import sys

from .arguments import add_web_arguments, check_output_file, path_value
from .errors import CliError
from .signals import sigterm_as_interrupt


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab", help="teaching labs: watch TCP states happen against the Linux kernel (list, or a lab name)",
        description="Run a teaching lab: ustack against the kernel's TCP in a private network namespace, "
        "with the ladder diagram, what ss said, and an explanation. 'ustack lab list' names them.")
    parser.add_argument("name", metavar="NAME", help="a lab name, or 'list'")
    parser.add_argument("--pcap", metavar="FILE", type=path_value,
                        help="keep the capture of the lab's traffic in FILE")
    parser.add_argument("--svg", metavar="FILE", type=path_value, help="also draw the (first) ladder as an SVG file")
    parser.add_argument("--plot", metavar="FILE", type=path_value,
                        help="where a lab that draws a plot saves it (.png or .svg; congestion: cwnd over time)")
    parser.add_argument("--ipv6", action="store_true",
                        help="run the lab over IPv6: ustack at fd00:77::2, the kernel at fd00:77::1 (default: IPv4)")
    parser.add_argument("--quiet", action="store_true", help="do not print each step as it happens (on stderr), only the report")
    add_web_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import labs
    from ..link.base import LinkError

    if args.name == "list":
        width = max(len(name) for name in labs.names())
        for name, summary in labs.summaries():
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.name not in labs.names():
        raise CliError(f"no lab named {args.name!r}; the labs are: {', '.join(labs.names())}")
    for output_file in (args.pcap, args.svg, args.plot):
        if output_file is not None:
            check_output_file(output_file)  # now, not after the lab with its report lost
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)
    # Each step as it happens goes to stderr; the report on stdout is the same with or without it.
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))

    def run_one(name: str, web=None) -> None:
        options = labs.LabOptions(pcap=args.pcap, svg=args.svg, plot=args.plot, log=log, web=web, ipv6=args.ipv6)
        # SIGTERM behaves like Ctrl-C: the lab's namespace and processes are taken down either way.
        try:
            with sigterm_as_interrupt():
                result = labs.run(name, options)
        except (labs.LabError, LinkError) as error:
            raise CliError(str(error)) from None
        except OSError as error:  # namespace, TUN or pcap trouble: one line, not a traceback
            raise CliError(f"{error.strerror or error}") from None
        if log is not None:
            print(file=sys.stderr)
        sys.stdout.write(result.text)

    if args.web is not None:  # the live page, which stays up to run more labs (ustack/web/cli.py)
        from ..web.cli import run_labs_with_web

        with sigterm_as_interrupt():
            return run_labs_with_web(args, run_one, list(labs.summaries()))
    run_one(args.name)
    return 0

