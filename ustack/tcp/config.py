"""Every knob of the TCP core, with its default and where the default comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TcpConfig:
    # --- segments and buffers ---
    mss: int = 1460  # the MSS we announce: an Ethernet MTU of 1500 minus 40 bytes of headers
    receive_buffer_size: int = 256 * 1024
    send_buffer_size: int = 256 * 1024

    # --- options negotiated on the SYN (each used only when both sides offer it) ---
    window_scaling: bool = True  # RFC 7323 2
    sack: bool = True  # RFC 2018: SACK-permitted; we send and record SACK blocks
    timestamps: bool = True  # RFC 7323 3-5: RTT measurement and PAWS

    # --- timers ---
    msl: float = 30.0  # maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 3.4.2)
    initial_rto: float = 1.0  # RFC 6298 2.1
    min_rto: float = 0.2  # Linux's floor; RFC 6298 2.4 says 1 s
    max_rto: float = 120.0  # RFC 6298 2.5: at least 60 s
    syn_retries: int = 6  # retransmissions of our SYN before "timed out" (Linux tcp_syn_retries)
    synack_retries: int = 5  # of our SYN-ACK (Linux tcp_synack_retries)
    max_retransmissions: int = 15  # of data or FIN (Linux tcp_retries2; RFC 1122 4.2.3.5 R2)
    delayed_ack_timeout: float = 0.04  # RFC 9293 3.8.6.3 allows up to 0.5 s; Linux uses 40 ms
    ack_every_segments: int = 2  # RFC 9293 3.8.6.3: ACK at least every second full segment
    persist_min: float = 0.2  # zero-window probe interval bounds (RFC 9293 3.8.6.1)
    persist_max: float = 60.0

    # --- sending policy ---
    nagle: bool = True  # RFC 9293 3.7.4; False is the TCP_NODELAY of sockets

    # --- keepalive (RFC 9293 3.8.4, RFC 1122 4.2.3.6: off by default, idle >= 2 hours) ---
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9

    # --- robustness ---
    rfc1337: bool = False  # ignore RST in TIME-WAIT (RFC 1337 "TIME-WAIT assassination" fix)
    challenge_ack_limit: int = 1000  # challenge ACKs per second and connection (RFC 5961 7)

    # --- congestion control ---
    congestion_control: str = "reno"
    initial_window_segments: int = 10  # RFC 6928

    @classmethod
    def for_mtu(cls, mtu: int, **knobs) -> "TcpConfig":
        """A configuration whose MSS fits an IPv4 link MTU: MTU minus the 20-byte IPv4 and 20-byte
        TCP headers (RFC 9293 3.7.1, RFC 879)."""
        return cls(mss=mtu - 40, **knobs)

    def __post_init__(self) -> None:
        if not 64 <= self.mss <= 65495:
            raise ValueError(f"mss must be in 64..65495, got {self.mss}")
        if self.receive_buffer_size < 1 or self.send_buffer_size < 1:
            raise ValueError("buffer sizes must be positive")
        if self.receive_buffer_size > (0xFFFF << 14):
            raise ValueError("receive_buffer_size exceeds what window scaling can advertise (2**30)")
        if self.ack_every_segments < 1:
            raise ValueError("ack_every_segments must be at least 1")
        if self.msl < 0 or self.delayed_ack_timeout < 0:
            raise ValueError("msl and delayed_ack_timeout cannot be negative")
