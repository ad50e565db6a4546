"""The `%{ }%` blocks of Linux scripts: Python run against the socket's TCP_INFO.

packetdrill takes getsockopt(TCP_INFO) of the socket under test at the block's time and runs the
block with every field as a variable (`assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd`). Against ustack
the fields come from the connection's own state (`ustack_tcp_info`), in Linux's units (struct
tcp_info, include/uapi/linux/tcp.h): windows in packets, times in microseconds. Only the fields
ustack keeps a true value for are given; a block that reads another one is skipped, naming it, so
that no verdict rests on a made-up number.

The names a block compares with (TCP_ESTABLISHED, TCP_CA_Recovery, TCPI_OPT_SACK, ...) are
TCP_INFO_NAMES. Blocks of one script share their variables (a block may define a constant, e.g.
`TCP_INFINITE_SSTHRESH = 0x7fffffff`, that a later one uses), as packetdrill runs them as one
program.
"""

from __future__ import annotations

from ustack.conform.profile import Unsupported
from ustack.tcp.congestion.base import INITIAL_SSTHRESH
from ustack.tcp.options import TIMESTAMP_OPTION_SPACE
from ustack.tcp.scoreboard import DUPLICATE_THRESHOLD
from ustack.tcp.seq import seq_diff, seq_lt
from ustack.tcp.state import State

# The names a block compares tcp_info with (include/net/tcp_states.h, uapi/linux/tcp.h).
TCP_INFO_NAMES = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
    "TCP_CLOSING": 11, "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4, "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4,
    "TCPI_OPT_ECN": 8, "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32,
}

# ustack's states as Linux numbers them (tcp_states.h).
LINUX_STATE_NUMBERS = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8, State.LAST_ACK: 9,
    State.LISTEN: 10, State.CLOSING: 11,
}
LINUX_INFINITE_SSTHRESH = 0x7FFFFFFF  # TCP_INFINITE_SSTHRESH: ssthresh not yet set


def _packets(byte_count: int, mss: int) -> int:
    """Linux counts windows in packets; ustack in bytes of `mss`-sized segments."""
    return byte_count // mss if mss else 0


def ustack_tcp_info(connection, listening: bool = False) -> dict[str, int]:
    """TCP_INFO of `connection` (None: no connection; `listening`: the socket is a listener)."""
    if connection is None:
        state = LINUX_STATE_NUMBERS[State.LISTEN if listening else State.CLOSED]
        return {"tcpi_state": state}
    congestion, snd, rtt = connection.congestion, connection.snd, connection.rtt
    mss = congestion.mss
    scoreboard = snd._scoreboard
    sacked = scoreboard.sacked_bytes() if scoreboard else 0
    ecn = connection.ecn
    if snd.retransmit_count:  # a retransmission timeout without progress since (tcp_enter_loss)
        ca_state = TCP_INFO_NAMES["TCP_CA_Loss"]
    elif congestion.in_recovery:
        ca_state = TCP_INFO_NAMES["TCP_CA_Recovery"]
    elif ecn is not None and ecn.reductions and seq_lt(snd.una, ecn.recover):  # reduced for an ECE (RFC 3168 6.1.2)
        ca_state = TCP_INFO_NAMES["TCP_CA_CWR"]
    elif snd.duplicate_acks or sacked:
        ca_state = TCP_INFO_NAMES["TCP_CA_Disorder"]
    else:
        ca_state = TCP_INFO_NAMES["TCP_CA_Open"]
    options = 0
    options |= TCP_INFO_NAMES["TCPI_OPT_TIMESTAMPS"] if connection.timestamps_enabled else 0
    options |= TCP_INFO_NAMES["TCPI_OPT_SACK"] if connection.sack_permitted else 0
    options |= TCP_INFO_NAMES["TCPI_OPT_WSCALE"] if connection.window_scaling_enabled else 0
    options |= TCP_INFO_NAMES["TCPI_OPT_ECN"] if connection.ecn is not None else 0
    fast_open = connection.fast_open
    options |= TCP_INFO_NAMES["TCPI_OPT_SYN_DATA"] if fast_open is not None and fast_open.syn_data_acked else 0
    # Linux's mss_cache and advmss leave out the timestamp option every segment carries.
    option_space = TIMESTAMP_OPTION_SPACE if connection.timestamps_enabled else 0
    info = {
        "tcpi_state": LINUX_STATE_NUMBERS[connection.state],
        "tcpi_ca_state": ca_state,
        "tcpi_options": options,
        "tcpi_snd_wscale": connection.send_shift if connection.window_scaling_enabled else 0,
        "tcpi_rcv_wscale": connection.receive_shift if connection.window_scaling_enabled else 0,
        "tcpi_snd_cwnd": _packets(congestion.cwnd, mss),
        "tcpi_snd_ssthresh": (
            LINUX_INFINITE_SSTHRESH if congestion.ssthresh >= INITIAL_SSTHRESH else _packets(congestion.ssthresh, mss)
        ),
        "tcpi_snd_mss": connection.send_mss - option_space,
        "tcpi_advmss": connection.config.mss - option_space,
        "tcpi_rto": round(rtt.rto * 1e6),
        "tcpi_retransmits": snd.retransmit_count,
        "tcpi_backoff": snd.retransmit_count,
        "tcpi_total_retrans": snd.retransmissions,
        "tcpi_sacked": -(-sacked // mss) if mss else 0,
        # Linux's packets_out counts MSS-sized pieces (tcp_skb_pcount); only the last is short.
        "tcpi_unacked": -(-seq_diff(snd.max, snd.una) // mss) if mss else 0,
        "tcpi_lost": -(-_lost_bytes(snd, mss) // mss) if mss else 0,
        "tcpi_retrans": -(-_retransmitted_bytes(snd) // mss) if mss else 0,
        # Linux's tp->reordering adapts to reordering it sees; ustack's DupThresh stays 3.
        "tcpi_reordering": DUPLICATE_THRESHOLD,
        "tcpi_snd_wnd": snd.wnd,
        "tcpi_bytes_received": connection.rcv.bytes_received,
    }
    if rtt.srtt is not None:
        info["tcpi_rtt"] = round(rtt.srtt * 1e6)
        info["tcpi_rttvar"] = round(rtt.rttvar * 1e6)
    return info


# The fields ustack_tcp_info gives (tcpi_rtt and tcpi_rttvar once an RTT was measured).
USTACK_FIELDS = frozenset({
    "tcpi_state", "tcpi_ca_state", "tcpi_options", "tcpi_snd_wscale", "tcpi_rcv_wscale", "tcpi_snd_cwnd",
    "tcpi_snd_ssthresh", "tcpi_snd_mss", "tcpi_advmss", "tcpi_rto", "tcpi_retransmits", "tcpi_backoff",
    "tcpi_total_retrans", "tcpi_sacked", "tcpi_snd_wnd", "tcpi_bytes_received", "tcpi_rtt", "tcpi_rttvar",
    "tcpi_lost", "tcpi_reordering", "tcpi_unacked", "tcpi_retrans",
})


def _failed_line(code: str, error: BaseException) -> str:
    """The block's line the error came from (the innermost frame in the block itself)."""
    lineno, traceback = None, error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename != __file__:
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    lines = code.splitlines()
    return lines[lineno - 1].strip() if lineno and lineno <= len(lines) else "?"


def check_code_block(code: str) -> None:
    """Before a run: Unsupported if the block cannot compile or reads a TCP_INFO field ustack
    does not give (the first such field is named)."""
    try:
        compiled = compile(code.rstrip().rstrip("\\"), "<block>", "exec")
    except SyntaxError as error:
        raise Unsupported("code block", f"not Python: {error.msg}") from None
    for name in _names(compiled):
        if name.startswith("tcpi_") and name not in USTACK_FIELDS:
            raise Unsupported(f"tcp_info field {name}", "ustack's TCP_INFO does not give it (tcp_info.USTACK_FIELDS)")


def _names(compiled) -> list[str]:
    names = list(compiled.co_names)
    for constant in compiled.co_consts:
        if hasattr(constant, "co_names"):
            names += _names(constant)
    return names


def _lost_bytes(snd, mss: int) -> int:
    """Bytes the scoreboard takes for lost (RFC 6675 IsLost, or RACK): below its lost point and
    not SACKed."""
    scoreboard = snd._scoreboard
    if not scoreboard:
        return 0
    lost_below = scoreboard.lost_below(snd.una, mss)
    return seq_diff(lost_below, snd.una) - scoreboard.sacked_between(snd.una, lost_below)


def _retransmitted_bytes(snd) -> int:
    """Bytes retransmitted in this recovery and neither acknowledged nor SACKed since (Linux's
    retrans_out). ustack tracks the retransmissions of a SACK recovery (send_side.py), not those
    of a retransmission timeout, which this does not count."""
    scoreboard = snd._scoreboard
    total = 0
    for start, end, _ in snd.recovery_retransmissions:
        start = start if seq_lt(snd.una, start) else snd.una
        if seq_lt(start, end):
            total += seq_diff(end, start) - (scoreboard.sacked_between(start, end) if scoreboard else 0)
    return total


def run_code_block(code: str, fields: dict[str, int], variables: dict, where: str, report) -> str | None:
    """Run one block with `fields` (TCP_INFO) and the script's `variables` (kept between blocks).
    None if it ran through; the failed assertion's text if one failed; Unsupported if the block
    reads a field that is not given. `report(text)` receives what the block prints."""
    names = dict(TCP_INFO_NAMES)
    names.update(fields)
    names["print"] = lambda *values, **_: report(" ".join(map(str, values)))
    code = code.rstrip().rstrip("\\")  # a last `\` before `}%` continues nothing
    before = dict(names)
    try:
        exec(compile(code, where, "exec"), {"__builtins__": __builtins__, **variables}, names)
    except AssertionError as error:
        return f"assertion failed in the Python block: {_failed_line(code, error)} -> {error}"
    except NameError as error:
        raise Unsupported("tcp_info field", f"the block reads what ustack's TCP_INFO does not give: {error}") from None
    except Exception as error:  # the block's own mistake: reported, as packetdrill does
        return f"error in the Python block: {type(error).__name__}: {error}"
    finally:
        # What the block defined stays for the blocks after it; TCP_INFO is taken afresh each time.
        variables.update({name: value for name, value in names.items() if before.get(name, names) is not value})
    return None
