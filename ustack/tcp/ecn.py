"""Explicit Congestion Notification (RFC 3168) for one connection.

A router whose queue fills may mark a packet "Congestion Experienced" (CE) in the ECN field of
its IP header (the low two bits of the IPv4 TOS byte, RFC 3168 5) instead of dropping it, if the
packet says its transport understands (ECT(0), 0b10). TCP then carries the signal back:

- negotiation (6.1.1): the active opener's SYN carries ECE and CWR; a SYN-ACK with ECE (and not
  CWR) agrees. Only then are packets marked ECT, each side's own data segments only: not SYNs,
  not pure ACKs (6.1.4), not retransmissions (6.1.5);
- the receiver of a CE-marked segment sets ECE on every ACK it sends (6.1.3) until a segment
  with CWR arrives;
- the sender of data reacts to ECE as to a loss, without retransmitting, at most once per
  window of data (6.1.2), and sets CWR on its next new data segment to say it has.

TcpConfig.ecn chooses: "on" asks on our SYNs and accepts, "passive" (the default, like Linux's
net.ipv4.tcp_ecn=2 and FreeBSD's net.inet.tcp.ecn.enable=2) accepts when a peer asks but does
not ask, "off" neither. The stack hands the ECN field of each arriving packet over
(`Connection.congestion_experienced`); the segments to mark come out of transmit() as
`EcnCapableSegment`s, which the stack builds with ECT(0).
"""

from __future__ import annotations

from ustack.tcp.seq import seq_diff, seq_lt
from ustack.wire.ipv4 import CE  # the ECN field's code points are the wire's (RFC 3168 5)
from ustack.wire.tcp import ACK, CWR, ECE, SYN, TcpSegment

ECN_MODES = ("off", "on", "passive")


class EcnCapableSegment(TcpSegment):
    """A segment to send in an ECN-capable packet: ECT(0) in its IP header (RFC 3168 6.1.2).
    Equal to the plain TcpSegment with the same fields."""

    __slots__ = ()


def reduce_once(congestion, flight: int, now: float) -> None:
    """A congestion signal with nothing to retransmit (an ECE, RFC 3168 6.1.2; a loss repaired by
    a tail loss probe, RFC 8985 7.4.2): the window the algorithm's own fast recovery would leave,
    at once. Recovery is entered with this flight and left as if it had all been acknowledged
    with as much still in the network, so that cwnd ends at the algorithm's ssthresh."""
    congestion.on_enter_fast_recovery(flight, now)
    congestion.on_recovery_ack(flight, 2 * flight, now)


class EcnState:
    """What one connection remembers of ECN, made when the SYNs negotiate it."""

    __slots__ = ("echo_ce", "cwr_owed", "recover", "ce_received", "reductions")

    def __init__(self, snd_max: int) -> None:
        self.echo_ce = False  # receiver: CE arrived; ECE on every ACK until CWR (6.1.3)
        self.cwr_owed = False  # sender: cwnd was reduced; CWR on the next new data (6.1.2)
        self.recover = snd_max  # sender: no second reaction before this is acknowledged
        # Statistics.
        self.ce_received = 0
        self.reductions = 0


class EcnProcessing:
    """The connection's side of ECN (a part of Connection, like acknowledgement.py)."""

    __slots__ = ()  # the variables are Connection's (connection.py)

    def _ecn_negotiate(self, syn: TcpSegment) -> None:
        """The peer's SYN or SYN-ACK (RFC 3168 6.1.1): a SYN asking with ECE and CWR, when we
        accept; a SYN-ACK agreeing with ECE alone, when our (first) SYN asked."""
        flags = syn.flags
        if self.config.ecn == "off" or not flags & ECE:
            return
        if flags & ACK:
            agreed = not flags & CWR and self.syn_asks_for_ecn()  # a SYN-ACK: ECE without CWR
        else:
            # A SYN asking (ECE and CWR), in LISTEN or in a simultaneous open; our SYN-ACK agrees.
            agreed = bool(flags & CWR)
        if agreed:
            self.ecn = EcnState(self.snd.max)

    def syn_asks_for_ecn(self) -> bool:
        """Our next SYN asks for ECN: with TcpConfig.ecn "on", the first SYN and the first
        ecn_syn_retries retransmissions; after that a plain SYN, in case ECE and CWR are what
        gets the SYN dropped on the way (RFC 3168 6.1.1.1)."""
        return self.config.ecn == "on" and self.snd.retransmit_count <= self.config.ecn_syn_retries

    def congestion_experienced(self) -> None:
        """The packet about to be received carried CE (the host saw its IP header, RFC 3168 6.1.3):
        echo ECE until the peer says CWR, and acknowledge at once so the sender learns soon."""
        ecn = self.ecn
        if ecn is None:
            return
        ecn.ce_received += 1
        ecn.echo_ce = True
        self.rcv.owe_ack()

    def _ecn_on_segment(self, segment: TcpSegment, now: float) -> None:
        """The ECN flags of an arriving segment in a synchronized state: CWR ends our echo
        (6.1.3); ECE on an ACK asks us to reduce cwnd, once per window (6.1.2)."""
        ecn = self.ecn
        flags = segment.flags
        if flags & CWR:
            ecn.echo_ce = False
        if not flags & ECE or flags & SYN:
            return
        snd = self.snd
        if ecn.reductions and seq_lt(segment.ack, ecn.recover):
            # This ACK is for data sent before our last reduction: the echo of the same
            # congestion, which we answered already (once per window of data).
            return
        if self.congestion.in_recovery:
            return  # the loss reaction under way covers this window (6.1.2)
        reduce_once(self.congestion, seq_diff(snd.nxt, snd.una), now)
        ecn.recover = snd.max
        ecn.reductions += 1
        ecn.cwr_owed = True

    def _ecn_mark(self, segment: TcpSegment) -> TcpSegment:
        """A new data segment of an ECN connection: ECT(0), and CWR if a reduction is unannounced."""
        ecn = self.ecn
        if ecn.cwr_owed:
            ecn.cwr_owed = False
            return EcnCapableSegment(*segment._replace(flags=segment.flags | CWR))
        return EcnCapableSegment(*segment)
