"""The `ustack` command line. Each subcommand lives in its own module under ustack/commands/ and
exposes `register(subparsers)`, which adds its parser and sets `run=function(args) -> int`.
This file only dispatches, and turns every expected failure (a CliError, from
ustack/commands/errors.py) into one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands.errors import CliError

# The modules under ustack/commands/, in the order `ustack --help` lists them.
COMMAND_MODULES = ["decode", "serve", "connect", "ss", "stats", "ladder", "plot", "conform", "drill", "lab", "cleanup"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the whole usage text
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ustack", description="A user-space TCP/IP stack over a Linux TUN device.")
    parser.add_argument("--version", action="version", version=f"ustack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ustack.commands.{name}").register(subparsers)
    parser.command_parsers = subparsers.choices  # name -> that command's parser
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        # Inside the try: Ctrl-C while the command modules are still being imported (asyncio,
        # pyroute2, ...: a good part of a second) is an interruption like any other.
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the command's parser: "ustack lab: ...", and its --help
            command_parser = parser.command_parsers.get(getattr(args, "command", None), parser)
            command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        try:
            return args.run(args) or 0
        except CliError as error:
            print(f"ustack {args.command}: {error}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
