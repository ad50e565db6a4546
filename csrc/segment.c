/* Software segmentation offload for a TUN device without the kernel's offloads (link/tun.py), the
 * two halves Linux does in software when a device cannot (GSO and GRO):
 *
 *   ustack_cut_tcp_segment    one TCP segment larger than the MTU, as the core built it, cut into
 *                             pieces the size the link carries (what TSO/GSO would put on the wire);
 *   ustack_join_tcp_segments  the packets one read batch brought, with every run of consecutive
 *                             in-order segments of one connection joined into one super-segment
 *                             (what GRO hands up), each packet's checksums verified first.
 *
 * Both speak only of bytes in buffers the caller owns (DESIGN.md rule 4: no allocation, no I/O);
 * the link reads and writes. Why each joining rule exists is written at ustack_join_tcp_segments.
 */
#include <stdint.h>
#include <string.h>

#include "wire.h"

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_ECE 0x40
#define TCP_FLAG_CWR 0x80
#define LARGEST_PACKET 65535 /* IPv4's 16-bit total length; what GRO and TSO build at most */

/* Where the TCP header starts (20 over IPv4 without options, 40 over IPv6 with TCP right after the
 * fixed header) if `packet` is such a TCP packet whose length fields agree with `length`, and is
 * no IPv4 fragment; 0 if it is not. */
static size_t tcp_start(const uint8_t *packet, size_t length)
{
    if (length < USTACK_IPV6_HEADER)
        return 0;
    if (packet[0] == 0x45) {
        if (packet[9] != USTACK_PROTOCOL_TCP || ustack_ipv4_total_length(packet, length) != length)
            return 0;
        if ((packet[6] & 0x3f) || packet[7]) /* MF or a fragment offset */
            return 0;
        return USTACK_IPV4_MIN_HEADER;
    }
    if ((packet[0] >> 4) == 6 && packet[6] == USTACK_PROTOCOL_TCP && length >= USTACK_IPV6_HEADER + USTACK_TCP_MIN_HEADER
        && (size_t)ustack_read16(packet + 4) + USTACK_IPV6_HEADER == length)
        return USTACK_IPV6_HEADER;
    return 0;
}

/* The pseudo-header's partial sum (RFC 9293 3.1, RFC 8200 8.1) for `tcp_length` bytes of TCP. */
static uint32_t pseudo_sum(const uint8_t *packet, size_t start, uint32_t tcp_length)
{
    if (start == USTACK_IPV6_HEADER)
        return ustack_pseudo_header_sum6(packet + 8, packet + 24, USTACK_PROTOCOL_TCP, tcp_length);
    return ustack_pseudo_header_sum(ustack_read32(packet + 12), ustack_read32(packet + 16), USTACK_PROTOCOL_TCP,
                                    tcp_length);
}

/* The IP header's length field for `total` bytes of packet, and over IPv4 its checksum again. */
static void set_ip_length(uint8_t *packet, size_t start, size_t total)
{
    if (start == USTACK_IPV6_HEADER) {
        ustack_write16(packet + 4, (uint16_t)(total - USTACK_IPV6_HEADER));
        return;
    }
    ustack_write16(packet + 2, (uint16_t)total);
    ustack_write16(packet + 10, 0);
    ustack_write16(packet + 10, ustack_checksum(packet, USTACK_IPV4_MIN_HEADER));
}

/* ------------------------------------------------------------------------------------------ */
/* Sending: one large segment cut into pieces                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Cuts the TCP segment `packet` (IPv4 without options or IPv6 with TCP straight after the fixed
 * header) into pieces of at most `largest` bytes (the link's MTU): each holds largest minus the
 * headers (IP, TCP and its options) bytes of data, the last one less if need be (what TSO does with
 * gso_size = MTU - headers). The segment is `packet`, `length` bytes, when `data` is NULL; else
 * `packet` holds its headers alone (`length` bytes, IP, TCP and options) and `data` its
 * `data_length` bytes of data (a segment the stack kept in parts, never joined: SegmentParts).
 * The pieces are written back to back into `out`, each length in `piece_lengths`. Every piece carries a copy of the
 * IP and TCP headers (options included) with its own sequence number, IP length (and over IPv4 the
 * identification advanced by the piece's index) and both checksums complete, whatever the
 * checksum field of `packet` held. PSH and FIN stay on the last piece only (as TSO keeps them) and
 * CWR on the first only (RFC 3168 6.1.2: one CWR per window reduction). Returns the number of
 * pieces; 0 if `packet` is not a TCP segment with data and the flags ACK, with PSH, FIN, CWR or
 * ECE at most, that this can cut (or its parts do not split where the data starts); minus
 * USTACK_REASON_BUILD_BUFFER_TOO_SMALL if `out` or `max_pieces` is too small. */
int ustack_cut_tcp_segment(const uint8_t *packet, size_t length, const uint8_t *data, size_t data_length,
                           size_t largest, uint8_t *out, size_t capacity, uint32_t *piece_lengths, size_t max_pieces)
{
    size_t total = data ? length + data_length : length; /* the whole segment's length */
    if (length < USTACK_IPV6_HEADER) /* (tcp_start reads the IP header: it must be in `packet`) */
        return 0;
    size_t start = tcp_start(packet, total);
    /* An IPv6 jumbogram (IPv6 BIG TCP, RFC 2675) is cut into ordinary packets: its hop-by-hop
     * header, which only says the jumbogram's length, is left out of every piece (`skip`), as the
     * kernel leaves it out when it cuts one. */
    size_t skip = 0;
    if (!start && length >= USTACK_IPV6_HEADER + USTACK_IPV6_JUMBO_HEADER
        && USTACK_IPV6_HEADER + ustack_ipv6_jumbo_length(packet, total) == total
        && packet[USTACK_IPV6_HEADER] == USTACK_PROTOCOL_TCP) {
        skip = USTACK_IPV6_JUMBO_HEADER;
        start = USTACK_IPV6_HEADER + skip;
    }
    if (!start || length < start + USTACK_TCP_MIN_HEADER)
        return 0;
    size_t header_length = start + (size_t)(packet[start + 12] >> 4) * 4;
    if (header_length < start + USTACK_TCP_MIN_HEADER || header_length >= total || largest <= header_length)
        return 0;
    if (data && header_length != length)
        return 0; /* the headers must be all of `packet` when the data lies apart */
    if ((packet[start + 13] & (uint8_t)~(TCP_FLAG_PSH | TCP_FLAG_FIN | TCP_FLAG_CWR | TCP_FLAG_ECE)) != TCP_FLAG_ACK)
        return 0; /* a data segment: SYN, RST and URG are not cut */
    const uint8_t *segment_data = data ? data : packet + header_length;
    size_t piece_start = start - skip, piece_header = header_length - skip; /* where they are in a piece */
    size_t piece_data = largest - piece_header;
    size_t all_data = total - header_length;
    size_t pieces = (all_data + piece_data - 1) / piece_data;
    if (pieces > max_pieces || capacity < total + (pieces - 1) * header_length)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    uint32_t seq = ustack_read32(packet + start + 4);
    uint16_t identification = ustack_read16(packet + 4);
    for (size_t index = 0, offset = 0; index < pieces; index++, offset += piece_data) {
        size_t this_data = all_data - offset < piece_data ? all_data - offset : piece_data;
        size_t piece_length = piece_header + this_data;
        if (skip) {
            memcpy(out, packet, USTACK_IPV6_HEADER);
            out[6] = USTACK_PROTOCOL_TCP; /* the Next Header the hop-by-hop header held */
            memcpy(out + USTACK_IPV6_HEADER, packet + start, header_length - start);
        } else {
            memcpy(out, packet, header_length);
        }
        memcpy(out + piece_header, segment_data + offset, this_data);
        if (start == USTACK_IPV4_MIN_HEADER)
            ustack_write16(out + 4, (uint16_t)(identification + index));
        set_ip_length(out, piece_start, piece_length);
        uint8_t *tcp = out + piece_start;
        ustack_write32(tcp + 4, seq + (uint32_t)offset);
        if (index + 1 < pieces)
            tcp[13] &= (uint8_t)~(TCP_FLAG_PSH | TCP_FLAG_FIN);
        if (index > 0)
            tcp[13] &= (uint8_t)~TCP_FLAG_CWR;
        ustack_write16(tcp + 16, 0);
        uint32_t sum = pseudo_sum(out, piece_start, (uint32_t)(piece_length - piece_start));
        ustack_write16(tcp + 16, ustack_checksum_finish(ustack_checksum_add(sum, tcp, piece_length - piece_start)));
        piece_lengths[index] = (uint32_t)piece_length;
        out += piece_length;
    }
    return (int)pieces;
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving: runs of segments joined                                                          */
/* ------------------------------------------------------------------------------------------ */

/* A packet that may join a run, or start one, after its checks: where TCP and the data start, its
 * flags, sequence number, data length and the partial sum of its data. */
struct candidate {
    size_t start;
    size_t header_length;
    size_t data_length;
    uint32_t seq;
    uint8_t flags;
    uint32_t data_sum;
};

/* Fills `c` and returns 1 if `packet` may be part of a joined run: TCP over IPv4 (no options, no
 * fragment) or IPv6 (no extension header) with both checksums right, data, and the flags ACK or
 * ACK|PSH. Anything else (a bad checksum included) is handed up alone, as it came, so the stack
 * decides about it and counts its drop under the name it always had. */
static int check_candidate(const uint8_t *packet, size_t length, struct candidate *c)
{
    size_t start = tcp_start(packet, length);
    if (!start)
        return 0;
    const uint8_t *tcp = packet + start;
    size_t header_length = start + (size_t)(tcp[12] >> 4) * 4;
    if (header_length < start + USTACK_TCP_MIN_HEADER || header_length >= length)
        return 0;
    if ((tcp[13] & (uint8_t)~TCP_FLAG_PSH) != TCP_FLAG_ACK) /* no SYN, FIN, RST, URG, ECE, CWR */
        return 0;
    if (start == USTACK_IPV4_MIN_HEADER && ustack_checksum(packet, USTACK_IPV4_MIN_HEADER) != 0)
        return 0;
    uint32_t header_sum = ustack_checksum_add(pseudo_sum(packet, start, (uint32_t)(length - start)), tcp,
                                              header_length - start);
    uint32_t data_sum = ustack_checksum_add(0, packet + header_length, length - header_length);
    if (ustack_checksum_finish(header_sum + data_sum) != 0) /* (finish folds the two partial sums' sum) */
        return 0;
    c->start = start;
    c->header_length = header_length;
    c->data_length = length - header_length;
    c->seq = ustack_read32(tcp + 4);
    c->flags = tcp[13];
    c->data_sum = data_sum;
    return 1;
}

/* Whether `packet` comes from the same flow as `first`, TCP starting at `start` in both: same family
 * and IP fields (TOS or traffic class with its ECN codepoint, so CE never joins non-CE; DF; TTL or
 * hop limit; flow label; addresses) and the same ports. */
static int same_flow(const uint8_t *first, const uint8_t *packet, size_t start)
{
    if (start == USTACK_IPV4_MIN_HEADER) {
        if (first[0] != 0x45 || first[1] != packet[1] || first[6] != packet[6] || first[8] != packet[8]
            || memcmp(first + 12, packet + 12, 8) != 0)
            return 0;
    } else if ((first[0] >> 4) != 6 || memcmp(first, packet, 4) != 0 || first[7] != packet[7]
               || memcmp(first + 8, packet + 8, 32) != 0) {
        return 0;
    }
    return memcmp(first + start, packet + start, 4) == 0; /* ports */
}

/* Whether `packet` (a candidate) continues the run whose first packet is `first`: the same flow,
 * the next sequence number, the same ACK number, header length, window and urgent pointer, and
 * byte for byte the same options. */
static int continues(const uint8_t *first, const uint8_t *packet, const struct candidate *c, uint32_t next_seq)
{
    size_t start = c->start;
    if (!same_flow(first, packet, start))
        return 0;
    const uint8_t *a = first + start, *b = packet + start;
    return c->seq == next_seq
           && memcmp(a + 8, b + 8, 5) == 0            /* ACK number, header length */
           && memcmp(a + 14, b + 14, 2) == 0          /* window */
           && memcmp(a + 18, b + 18, c->header_length - start - 18) == 0; /* urgent pointer, options */
}

/* A pure ACK that a later one of its run may absorb, after its checks. */
struct pure_ack {
    size_t start;
    size_t header_length; /* TCP's: 20, or 32 with the timestamps option */
    uint32_t ack;
    uint32_t ts_val;
    uint32_t ts_ecr;
};

/* Fills `a` and returns 1 if `packet` is a pure ACK a run of ACKs may hold: TCP over IPv4 (no
 * options, no fragment) or IPv6 (no extension header) with both checksums right, no data, the flag
 * ACK alone (no ECE, CWR, PSH, URG, SYN, FIN or RST: each is news the core must see), and no option
 * but the timestamps as Linux lays them out (NOP, NOP, TS): no SACK block, whose news is its own. */
static int check_pure_ack(const uint8_t *packet, size_t length, struct pure_ack *a)
{
    size_t start = tcp_start(packet, length);
    if (!start)
        return 0;
    const uint8_t *tcp = packet + start;
    size_t header_length = (size_t)(tcp[12] >> 4) * 4;
    if (start + header_length != length || tcp[13] != TCP_FLAG_ACK)
        return 0;
    if (header_length == 32) {
        if (tcp[20] != 1 || tcp[21] != 1 || tcp[22] != 8 || tcp[23] != 10)
            return 0;
        a->ts_val = ustack_read32(tcp + 24);
        a->ts_ecr = ustack_read32(tcp + 28);
    } else if (header_length == USTACK_TCP_MIN_HEADER) {
        a->ts_val = a->ts_ecr = 0;
    } else {
        return 0;
    }
    if (start == USTACK_IPV4_MIN_HEADER && ustack_checksum(packet, USTACK_IPV4_MIN_HEADER) != 0)
        return 0;
    if (ustack_checksum_finish(ustack_checksum_add(pseudo_sum(packet, start, (uint32_t)header_length), tcp,
                                                   header_length)) != 0)
        return 0;
    a->start = start;
    a->header_length = header_length;
    a->ack = ustack_read32(tcp + 8);
    return 1;
}

/* Whether the pure ACK `packet` may follow `last` in a run whose first ACK advertised `first_window`,
 * `last` then being absorbed: the same flow, sequence number, urgent pointer and option layout; an
 * ACK number strictly beyond `last`'s (so it acknowledges new data: a duplicate ACK never joins,
 * RFC 5681 3.2); `last`'s window no larger than both the first's and this one's largest (the send
 * window ends with the newest ACK's as one by one, RFC 9293 3.10.7.4, and the largest window seen
 * is not changed by the absorbed ones; a receiver's window wavers by a unit as its reader keeps up);
 * and timestamps that do not go back (TSval, so that TS.Recent ends where it would and no absorbed
 * ACK would have failed PAWS after the one before it, RFC 7323 4.3 and 5.3; TSecr, so that the
 * last ACK's RTT sample is the run's smallest). */
static int continues_acks(const uint8_t *last_packet, const struct pure_ack *last, uint16_t first_window,
                          const uint8_t *packet, const struct pure_ack *a)
{
    size_t start = a->start;
    if (start != last->start || a->header_length != last->header_length || !same_flow(last_packet, packet, start))
        return 0;
    const uint8_t *p = last_packet + start, *q = packet + start;
    uint16_t window = ustack_read16(q + 14), last_window = ustack_read16(p + 14);
    return memcmp(p + 4, q + 4, 4) == 0       /* sequence number */
           && (last_window <= window || last_window <= first_window)
           && memcmp(p + 18, q + 18, 2) == 0  /* urgent pointer */
           && (int32_t)(a->ack - last->ack) > 0 && (int32_t)(a->ts_val - last->ts_val) >= 0
           && (int32_t)(a->ts_ecr - last->ts_ecr) >= 0;
}

/* Two partial sums added, folded back to 16 bits (end-around carry, RFC 1071). */
static uint32_t fold16(uint32_t sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    return (sum & 0xffff) + (sum >> 16);
}

/* A 16-bit partial sum of bytes that sit at an odd offset of the whole, as the whole counts them
 * (RFC 1071 2(B): swapping the bytes of every word swaps the bytes of the sum). */
static uint32_t swapped(uint32_t sum)
{
    return ((sum & 0xff) << 8) | (sum >> 8);
}

/* The run being joined in place at `run->offset` of the buffer. */
struct run {
    size_t offset;
    size_t length;       /* bytes of the joined packet so far */
    size_t start;        /* where TCP starts */
    size_t header_length;
    size_t first_data;   /* the first piece's data length: every piece but the last has it */
    uint32_t next_seq;
    uint32_t data_sum;   /* partial sum of all the data, as the joined packet lays it out */
    uint8_t flags;       /* the last piece's */
    int open;            /* may still grow: no PSH and no short piece yet */
    uint16_t segments;
};

static void finish_run(uint8_t *buffer, const struct run *run, struct ustack_joined_packet *out)
{
    uint8_t *packet = buffer + run->offset;
    if (run->segments > 1) {
        size_t start = run->start;
        uint8_t *tcp = packet + start;
        set_ip_length(packet, start, run->length);
        tcp[13] = run->flags; /* PSH, if the last piece carried it */
        ustack_write16(tcp + 16, 0);
        uint32_t sum = ustack_checksum_add(pseudo_sum(packet, start, (uint32_t)(run->length - start)), tcp,
                                           run->header_length - start);
        ustack_write16(tcp + 16, ustack_checksum_finish(fold16(sum + run->data_sum)));
    }
    out->offset = (uint32_t)run->offset;
    out->length = (uint32_t)run->length;
    out->segments = run->segments;
    out->acks = 1;
}

/* A run of pure ACKs: the first was handed up as it came; `last` is the newest, held back until the
 * run ends (the ones between were absorbed by it). */
struct ack_run {
    size_t offset;
    size_t length;
    struct pure_ack last;
    uint16_t first_window; /* the first ACK's window field */
    uint16_t count;        /* ACKs in the run, the first included */
};

static void emit(struct ustack_joined_packet *out, size_t offset, size_t length, uint16_t segments, uint16_t acks)
{
    out->offset = (uint32_t)offset;
    out->length = (uint32_t)length;
    out->segments = segments;
    out->acks = acks;
}

/* Joins, in place, runs of consecutive packets in `buffer`: packet i sits at i * slot_size with
 * lengths[i] bytes (as the link read it). Writes one entry per packet handed up to `out` (at most
 * `count`) and returns how many: `offset` and `length` in the buffer, `segments` how many packets
 * it holds (1: as read, untouched; 0: for the link to drop by name: not an IP packet, or longer
 * than its slot, which a read reports when the packet did not fit).
 *
 * The rules keep every decision of the core (RFC 9293) what it would have been for the packets one
 * by one, and follow Linux's tcp_gro_receive, which the kernel's own GRO hands ustack with offloads:
 * - only TCP data segments of one connection in sequence order with the same ACK number, window,
 *   header length and options byte for byte. Equal options include the timestamps: joining
 *   segments with different TSvals would hide all but one from RFC 7323's TS.Recent update and
 *   PAWS test (4.3, 5.3), so a run ends where the peer's clock ticks (Linux does the same; a 1 ms
 *   clock still lets about a hundred segments join at 137,000 per second);
 * - flags ACK, with PSH allowed on the last piece (it ends the run, as it ends a read batch for the
 *   application); SYN, FIN, RST, URG, ECE and CWR segments go alone (RFC 3168: CWR and ECE are
 *   signals the core must see on the very segment);
 * - the same IP fields that matter (ECN codepoint: CE never joins non-CE, RFC 3168 5), no IPv4
 *   options or fragments;
 * - every piece but the last as long as the first; a shorter one ends the run; at most 65,535 bytes.
 * Each packet's IPv4 header checksum and TCP checksum are verified before it joins; the joined
 * packet gets new ones, the TCP one from the pieces' sums without another pass over the data.
 *
 * Runs of consecutive pure ACKs of one connection, each acknowledging new data beyond the one before
 * (check_pure_ack and continues_acks say which), are thinned: the first is handed up as it came
 * (it may be a duplicate ACK: only the core knows SND.UNA), the last with `acks` = the number of
 * ACKs after the first, and those between are absorbed by the last, which acknowledges everything
 * they did (cumulative ACKs, RFC 9293 3.4) with newer timestamps, and leaves the send window where
 * they would have. A peer that
 * acknowledges every second segment sends ~50 ACKs per read batch of a download without offloads,
 * and each cost a parse and a pass through the core; RFC 3449 5.2.2 (ACK filtering) keeps only the
 * newest of such a run in a queue, and the core learns from `acks` how many there were (the
 * congestion window's byte counting, RFC 3465 2.2's limit L per ACK, counts each; see
 * ustack/tcp/acknowledgement.py for what else changes). Each ACK's checksums are verified first: a
 * bad one ends the run and goes up alone to be dropped by name. */
int ustack_join_tcp_segments(uint8_t *buffer, size_t slot_size, const uint32_t *lengths, size_t count,
                             struct ustack_joined_packet *out)
{
    struct run run;
    struct ack_run acks;
    size_t produced = 0;
    run.segments = 0;
    memset(&acks, 0, sizeof acks);
    for (size_t index = 0; index < count; index++) {
        size_t offset = index * slot_size;
        size_t length = lengths[index];
        uint8_t *packet = buffer + offset;
        struct candidate c;
        struct pure_ack a;
        int joinable = length <= slot_size && check_candidate(packet, length, &c);
        int pure = !joinable && length <= slot_size && check_pure_ack(packet, length, &a);
        if (pure && acks.count && acks.count < UINT16_MAX
            && continues_acks(buffer + acks.offset, &acks.last, acks.first_window, packet, &a)) {
            acks.offset = offset; /* the one held back so far is absorbed by this one */
            acks.length = length;
            acks.last = a;
            acks.count++;
            continue;
        }
        if (joinable && run.segments && run.open && run.start == c.start && run.header_length == c.header_length
            && c.data_length <= run.first_data && run.length + c.data_length <= LARGEST_PACKET
            && continues(buffer + run.offset, packet, &c, run.next_seq)) {
            size_t data_offset = run.length - run.start; /* within the joined TCP segment */
            memmove(buffer + run.offset + run.length, packet + c.header_length, c.data_length);
            run.data_sum = fold16(run.data_sum + ((data_offset & 1) ? swapped(c.data_sum) : c.data_sum));
            run.length += c.data_length;
            run.next_seq += (uint32_t)c.data_length;
            run.flags = c.flags;
            run.segments++;
            run.open = !(c.flags & TCP_FLAG_PSH) && c.data_length == run.first_data;
            continue;
        }
        if (run.segments) {
            finish_run(buffer, &run, &out[produced++]);
            run.segments = 0;
        }
        if (acks.count > 1)
            emit(&out[produced++], acks.offset, acks.length, 1, (uint16_t)(acks.count - 1));
        acks.count = 0;
        if (joinable) {
            run.offset = offset;
            run.length = length;
            run.start = c.start;
            run.header_length = c.header_length;
            run.first_data = c.data_length;
            run.next_seq = c.seq + (uint32_t)c.data_length;
            run.data_sum = c.data_sum;
            run.flags = c.flags;
            run.open = !(c.flags & TCP_FLAG_PSH);
            run.segments = 1;
            continue;
        }
        if (pure) { /* handed up as it came, and the first of a run */
            emit(&out[produced++], offset, length, 1, 1);
            acks.offset = offset;
            acks.length = length;
            acks.last = a;
            acks.first_window = ustack_read16(packet + a.start + 14);
            acks.count = 1;
            continue;
        }
        emit(&out[produced++], offset, length,
             (uint16_t)(length && length <= slot_size && ((packet[0] >> 4) == 4 || (packet[0] >> 4) == 6)), 1);
    }
    if (run.segments)
        finish_run(buffer, &run, &out[produced++]);
    if (acks.count > 1)
        emit(&out[produced++], acks.offset, acks.length, 1, (uint16_t)(acks.count - 1));
    return (int)produced;
}


/* The same thinning of pure-ACK runs for a batch of packets that were read one by one, each in a
 * buffer of its own: the TUN link with the vnet header, whose kernel joins data segments (GRO) but
 * hands every pure ACK up alone (~8 per MB of a download, each a parse and a pass through the
 * core). `packets[i]` (NULL for one not worth looking at: too long to be a pure ACK) has
 * `lengths[i]` bytes. Writes `acks[i]`: 0 for an ACK absorbed by a later one of its run, else how
 * many ACKs packet i stands for: 1 for anything handed up as it came (a run's first ACK included),
 * and for a run's last ACK the number of ACKs after the first, as ustack_join_tcp_segments's AckRun
 * entries say. The rule is that function's: check_pure_ack and continues_acks, and anything else
 * between two ACKs ends their run. Returns how many were absorbed. */
int ustack_thin_pure_acks(uint8_t *const *packets, const uint32_t *lengths, size_t count, uint16_t *acks)
{
    struct pure_ack last = {0}, a;
    size_t last_index = 0;
    uint16_t first_window = 0, in_run = 0; /* ACKs in the current run, the first included */
    int absorbed = 0;
    for (size_t index = 0; index < count; index++) {
        const uint8_t *packet = packets[index];
        acks[index] = 1;
        int pure = packet != NULL && check_pure_ack(packet, lengths[index], &a);
        if (pure && in_run && in_run < UINT16_MAX
            && continues_acks(packets[last_index], &last, first_window, packet, &a)) {
            if (in_run > 1) { /* the one held back so far is absorbed by this one */
                acks[last_index] = 0;
                absorbed++;
            }
            in_run++;
            acks[index] = (uint16_t)(in_run - 1);
            last_index = index;
            last = a;
            continue;
        }
        in_run = 0;
        if (pure) { /* handed up as it came, and the first of a run */
            last_index = index;
            last = a;
            first_window = ustack_read16(packet + a.start + 14);
            in_run = 1;
        }
    }
    return absorbed;
}
