"""One module per `ustack` subcommand (see ustack/cli.py), each with `register(subparsers)`:

    decode, serve, connect, ss, stats, ladder, conform, lab, cleanup

and what they share, one job each:

    errors.py     CliError: the one-line failure cli.py prints (exit 2)
    arguments.py  argparse types, output-file checks, the network and --ladder flag groups
    faults.py     the fault flags (--loss, --delay, --reorder, ..., per direction) -> two Faults
    ss_filter.py  ss's filter language (state, sport/dport/src/dst, and/or/not) for `ustack ss`
    signals.py    Ctrl-C and SIGTERM: KeyboardInterrupt while setting up, an Event once running
    live.py       serve/connect after parsing: ustack.network built from the flags, --ladder's
                  LiveLadders, the TcpConfig (--msl), the control socket
    capture_file.py  reading a pcap file for decode and ladder

The network itself (addresses, TUN, namespace, link chain) is ustack/network.py's, and the live
ladders are ustack/trace/live.py's: the labs and scripts/bench.py use them too.
"""

from __future__ import annotations
