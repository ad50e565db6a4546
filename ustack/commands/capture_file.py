"""Reading a capture file for `ustack decode` and `ustack ladder`, with one clear line for each
way it can be unusable: unreadable, empty, pcapng instead of pcap, not a capture at all. And
noticing a file that ends in the middle of a packet (a capture cut short), which both commands
still read up to the cut, as tcpdump does, but say so.
"""

from __future__ import annotations

from ..wire.errors import WireError
from ..wire.pcap import read_records
from .errors import CliError

# pcapng (the format Wireshark, dumpcap and tshark write by default) starts with a Section Header
# Block, whose type 0x0A0D0D0A reads the same in both byte orders.
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAP_FILE_HEADER_BYTES = 24  # classic pcap: the global header...
PCAP_RECORD_HEADER_BYTES = 16  # ...then, per packet, this header and the captured bytes


STDIN_NAME = "-"  # as tcpdump -r -: the capture comes from a pipe (tcpdump -w - ... | ustack decode -)


def read_capture_file(file_name: str) -> bytes:
    """The whole file ("-": standard input), if it can be a classic pcap capture; else CliError
    with the reason."""
    if file_name == STDIN_NAME:
        return _check_capture("standard input", _read_stdin())
    try:
        with open(file_name, "rb") as capture_file:
            blob = capture_file.read()
    except OSError as error:
        raise CliError(f"cannot read {file_name}: {error.strerror or error}") from None
    return _check_capture(file_name, blob)


def _read_stdin() -> bytes:
    import sys

    if sys.stdin is None:
        raise CliError("no standard input to read the capture from")
    if sys.stdin.isatty():  # a person would wait for nothing: a capture is binary, not typed
        raise CliError("'-' reads a pcap from standard input, which is a terminal: pipe one in "
                       "(tcpdump -U -w - ... | ustack decode -) or name a file")
    try:
        return sys.stdin.buffer.read()
    except OSError as error:
        raise CliError(f"cannot read standard input: {error.strerror or error}") from None


def _check_capture(file_name: str, blob: bytes) -> bytes:
    if not blob:
        raise CliError(f"{file_name} is empty (not a pcap capture)")
    if blob.startswith(PCAPNG_MAGIC):
        raise CliError(f"{file_name} is a pcapng file; ustack reads classic pcap (what tcpdump -w writes): "
                       f"convert it with `editcap -F pcap {file_name} out.pcap`")
    try:
        read_records(blob)  # only the global header is checked here
    except WireError as error:
        raise CliError(f"{file_name} is not a pcap file ({error})") from None
    return blob


def cut_short_note(file_name: str, blob: bytes, records_read: int, bytes_read: int) -> str | None:
    """A line saying the file ends inside a packet record, or None if it ends cleanly.
    `bytes_read` is the sum of the captured lengths of the `records_read` whole records."""
    used = PCAP_FILE_HEADER_BYTES + records_read * PCAP_RECORD_HEADER_BYTES + bytes_read
    left = len(blob) - used
    if left <= 0:
        return None
    return (f"{file_name} is cut short: packet {records_read + 1} is incomplete ({left} bytes of it are there) "
            "and is left out")
