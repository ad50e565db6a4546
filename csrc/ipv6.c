/* IPv6 header parse and build, the extension header chain, and whole IPv6 packets (RFC 8200).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version| Traffic Class |           Flow Label                  |
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   |                Source Address (128 bits)                      |
 *   |             Destination Address (128 bits)                    |
 *
 * Each extension header starts with Next Header and (except the fragment header, always 8 bytes)
 * Hdr Ext Len, its length in 8-byte units not counting the first 8 (RFC 8200 4). The chain is
 * walked from the fixed header to the first Next Header that is not an extension header we know:
 * that is the upper-layer protocol (TCP, ICMPv6, 59 "no next header", or one we do not carry,
 * which the host counts as "protocol not supported").
 */
#include <string.h>

#include "wire.h"

#define NEXT_HOP_BY_HOP 0
#define NEXT_ROUTING 43
#define NEXT_FRAGMENT 44
#define NEXT_DESTINATION_OPTIONS 60
#define EXTENSION_UNIT 8
#define FRAGMENT_HEADER_LENGTH 8
#define FRAGMENT_OFFSET_MASK 0xfff8 /* the 13-bit offset, already in bytes where it sits */
#define FRAGMENT_MORE 0x0001
#define OPTION_PAD1 0
#define OPTION_PADN 1
/* A real packet carries two or three extension headers at most; eight bounds the work per packet
 * (RFC 8200 4.1 recommends an order with each header at most once, destination options twice). */
#define MAX_EXTENSION_HEADERS 8
#define MAX_IPV6_PAYLOAD 65535

/* The fixed 40 bytes, read without checks (the caller made sure they are there). */
void ustack_read_ipv6_fixed(const uint8_t *packet, struct ustack_ipv6_fields *out)
{
    uint32_t first_word = ustack_read32(packet);
    out->traffic_class = (uint8_t)(first_word >> 20);
    out->flow_label = first_word & 0xfffff;
    out->payload_length = ustack_read16(packet + 4);
    out->protocol = packet[6];
    out->hop_limit = packet[7];
    memcpy(out->src, packet + 8, 16);
    memcpy(out->dst, packet + 24, 16);
    out->has_fragment_header = 0;
    out->more_fragments = 0;
    out->reserved = 0;
    out->fragment_offset = 0;
    out->header_length = USTACK_IPV6_HEADER;
    out->identification = 0;
}

/* RFC 2675 jumbograms, as IPv6 BIG TCP builds them (Linux 5.19 and later, and ustack's segments
 * for a TUN link that cuts them): Payload Length 0, then a hop-by-hop header of 8 bytes holding
 * the Jumbo Payload option alone, its length above 65535 and within the frame (and within 256
 * KiB: no larger one is ever built). Any other use of the option is discarded as an unknown one
 * (check_options): RFC 2675 3 makes each a parameter problem. */
size_t ustack_ipv6_jumbo_length(const uint8_t *packet, size_t length)
{
    if (length < USTACK_IPV6_HEADER + USTACK_IPV6_JUMBO_HEADER || ustack_read16(packet + 4) != 0
        || packet[6] != NEXT_HOP_BY_HOP)
        return 0;
    const uint8_t *header = packet + USTACK_IPV6_HEADER;
    if (header[1] != 0 || header[2] != USTACK_IPV6_OPTION_JUMBO || header[3] != 4)
        return 0;
    size_t jumbo_length = ustack_read32(header + 4);
    if (jumbo_length <= MAX_IPV6_PAYLOAD || USTACK_IPV6_HEADER + jumbo_length > length
        || USTACK_IPV6_HEADER + jumbo_length > USTACK_LARGEST_BIG_PACKET)
        return 0;
    return jumbo_length;
}

/* The TLV options of a hop-by-hop or destination options header (RFC 8200 4.2). Pad1 is one byte,
 * every other option is type, length, value and must end inside the header. An option we do not
 * know is skipped when the two high bits of its type are 00; any other action means "discard the
 * packet" (we send no parameter problem from the wire layer: the host may). Jumbo payload (0xC2)
 * falls there too, but in a jumbogram of the one layout ustack_ipv6_jumbo_length takes, whose
 * hop-by-hop header the parser reads itself. */
static int check_options(const uint8_t *header, size_t length)
{
    size_t i = 2;
    while (i < length) {
        uint8_t type = header[i];
        if (type == OPTION_PAD1) {
            i++;
            continue;
        }
        if (i + 1 >= length)
            return USTACK_REASON_IPV6_BAD_OPTION_LENGTH;
        size_t option_length = 2 + (size_t)header[i + 1];
        if (option_length > length - i)
            return USTACK_REASON_IPV6_BAD_OPTION_LENGTH;
        if (type != OPTION_PADN && (type >> 6) != 0)
            return USTACK_REASON_IPV6_UNKNOWN_OPTION;
        i += option_length;
    }
    return USTACK_OK;
}

/* Walks the extension headers of the packet at `packet`, whose fixed header is already in `out`,
 * reading only the first `available` bytes (>= 40). On success `out->protocol` is the upper-layer
 * protocol and `out->header_length` where its header starts. A fragment that is not atomic stops
 * the walk: what follows its fragment header is part of a datagram to reassemble (RFC 8200 4.5). */
int ustack_walk_ipv6_chain(const uint8_t *packet, size_t available, struct ustack_ipv6_fields *out)
{
    size_t offset = out->header_length; /* 40, or past a jumbogram's hop-by-hop header */
    uint8_t next = out->protocol;
    for (int count = 0;; count++) {
        if (next != NEXT_HOP_BY_HOP && next != NEXT_ROUTING && next != NEXT_FRAGMENT &&
            next != NEXT_DESTINATION_OPTIONS)
            break;
        if (count == MAX_EXTENSION_HEADERS)
            return USTACK_REASON_IPV6_EXTENSION_CHAIN_TOO_LONG;
        /* RFC 8200 4.3: hop-by-hop options only right after the fixed header. */
        if (next == NEXT_HOP_BY_HOP && offset != USTACK_IPV6_HEADER)
            return USTACK_REASON_IPV6_MISPLACED_HOP_BY_HOP;
        if (available - offset < EXTENSION_UNIT) /* every extension header is at least 8 bytes */
            return USTACK_REASON_IPV6_EXTENSION_TRUNCATED;
        const uint8_t *header = packet + offset;
        size_t header_length = FRAGMENT_HEADER_LENGTH;
        if (next == NEXT_FRAGMENT) {
            if (out->has_fragment_header) /* a datagram is fragmented once (RFC 8200 4.5) */
                return USTACK_REASON_IPV6_BAD_FRAGMENT;
            uint16_t offset_and_flags = ustack_read16(header + 2);
            out->has_fragment_header = 1;
            out->more_fragments = (offset_and_flags & FRAGMENT_MORE) != 0;
            out->fragment_offset = offset_and_flags & FRAGMENT_OFFSET_MASK;
            out->identification = ustack_read32(header + 4);
            if (out->more_fragments || out->fragment_offset != 0) {
                out->protocol = header[0];
                out->header_length = (uint16_t)(offset + FRAGMENT_HEADER_LENGTH);
                return USTACK_OK;
            }
            /* An atomic fragment (offset 0, M clear): processed as a whole packet (RFC 6946 4). */
        } else {
            header_length = ((size_t)header[1] + 1) * EXTENSION_UNIT;
            if (header_length > available - offset)
                return USTACK_REASON_IPV6_EXTENSION_TRUNCATED;
            /* RFC 8200 4.4: a routing header with segments left asks us to forward the packet to
             * the next address; a host does not (and type 0 is deprecated, RFC 5095). With no
             * segments left it is ignored. */
            if (next == NEXT_ROUTING && header[3] != 0)
                return USTACK_REASON_IPV6_ROUTING_SEGMENTS_LEFT;
            if (next != NEXT_ROUTING) {
                int reason = check_options(header, header_length);
                if (reason != USTACK_OK)
                    return reason;
            }
        }
        next = header[0];
        offset += header_length;
    }
    out->protocol = next;
    out->header_length = (uint16_t)offset;
    return USTACK_OK;
}

/* Validates the fixed header (structure first: every later read is inside the buffer) and walks
 * the chain. Bytes past 40 + payload length (link padding) are ignored. IPv6 has no header
 * checksum (RFC 8200 8.1: the upper layers cover the addresses through the pseudo-header). */
int ustack_parse_ipv6(const uint8_t *packet, size_t length, struct ustack_ipv6_fields *out)
{
    if (length < USTACK_IPV6_HEADER)
        return USTACK_REASON_IPV6_TRUNCATED;
    if ((packet[0] >> 4) != 6)
        return USTACK_REASON_IPV6_BAD_VERSION;
    ustack_read_ipv6_fixed(packet, out);
    size_t jumbo_length = ustack_ipv6_jumbo_length(packet, length);
    size_t end = USTACK_IPV6_HEADER + (jumbo_length ? jumbo_length : (size_t)out->payload_length);
    if (end > length)
        return USTACK_REASON_IPV6_BAD_PAYLOAD_LENGTH;
    /* A jumbogram's hop-by-hop header is ours to read (its option checked above): the walk
     * starts after it. */
    if (jumbo_length) {
        out->protocol = packet[USTACK_IPV6_HEADER];
        out->header_length = USTACK_IPV6_HEADER + USTACK_IPV6_JUMBO_HEADER;
    }
    int reason = ustack_walk_ipv6_chain(packet, end, out);
    if (reason != USTACK_OK)
        return reason;
    if (out->more_fragments || out->fragment_offset != 0) {
        /* RFC 8200 4.5: every fragment but the last carries a multiple of 8 bytes, and no
         * fragment reaches past the largest datagram. */
        size_t fragment_length = end - out->header_length;
        if ((out->more_fragments && fragment_length % 8 != 0) ||
            (size_t)out->fragment_offset + fragment_length > MAX_IPV6_PAYLOAD)
            return USTACK_REASON_IPV6_BAD_FRAGMENT;
    }
    return USTACK_OK;
}

/* ustack_parse_packet for version 6: the header and chain, then TCP or ICMPv6 with their
 * checksums over the IPv6 pseudo-header (RFC 8200 8.1). */
int ustack_parse_packet6(const uint8_t *packet, size_t length, struct ustack_packet_fields *out, int tcp_checksum_known)
{
    out->version = 6;
    out->transport = USTACK_TRANSPORT_NONE;
    struct ustack_ipv6_fields *ip = &out->ip6;
    int reason = ustack_parse_ipv6(packet, length, ip);
    if (reason != USTACK_OK)
        return reason;
    const uint8_t *upper = packet + ip->header_length;
    size_t jumbo_length = ustack_ipv6_jumbo_length(packet, length);
    size_t upper_length = USTACK_IPV6_HEADER + (jumbo_length ? jumbo_length : (size_t)ip->payload_length)
                          - ip->header_length;
    out->payload_offset = ip->header_length;
    out->payload_length = (uint32_t)upper_length;
    if (ip->more_fragments || ip->fragment_offset != 0)
        return USTACK_OK; /* checked after reassembly, as for IPv4 */

    if (ip->protocol == USTACK_PROTOCOL_TCP) {
        reason = tcp_checksum_known
                     ? ustack_parse_tcp_checksum_known(upper, upper_length, &out->tcp)
                     : ustack_parse_tcp_summed(upper, upper_length,
                                               ustack_pseudo_header_sum6(ip->src, ip->dst, USTACK_PROTOCOL_TCP, 0), &out->tcp);
        if (reason != USTACK_OK)
            return reason;
        out->transport = USTACK_TRANSPORT_TCP;
        out->payload_offset += out->tcp.header_length;
        out->payload_length -= out->tcp.header_length;
    } else if (ip->protocol == USTACK_PROTOCOL_ICMPV6) {
        reason = ustack_parse_icmp6(upper, upper_length, ip->src, ip->dst, &out->icmp6);
        if (reason != USTACK_OK)
            return reason;
        out->transport = USTACK_TRANSPORT_ICMPV6;
        out->payload_offset += USTACK_ICMP_HEADER;
        out->payload_length -= USTACK_ICMP_HEADER;
    }
    return USTACK_OK;
}

int ustack_build_ipv6_header(uint8_t *out, size_t capacity, const struct ustack_ipv6_fields *header)
{
    if (capacity < USTACK_IPV6_HEADER)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    ustack_write32(out, (6u << 28) | ((uint32_t)header->traffic_class << 20) | (header->flow_label & 0xfffff));
    ustack_write16(out + 4, header->payload_length);
    out[6] = header->protocol;
    out[7] = header->hop_limit;
    memcpy(out + 8, header->src, 16);
    memcpy(out + 24, header->dst, 16);
    return USTACK_IPV6_HEADER;
}

static void write_fixed_header(uint8_t *out, const uint8_t *src, const uint8_t *dst, uint8_t protocol,
                               uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class, size_t payload_length)
{
    struct ustack_ipv6_fields header = {
        .protocol = protocol,
        .hop_limit = hop_limit,
        .payload_length = (uint16_t)payload_length,
        .flow_label = flow_label,
        .traffic_class = traffic_class,
    };
    memcpy(header.src, src, 16);
    memcpy(header.dst, dst, 16);
    ustack_build_ipv6_header(out, USTACK_IPV6_HEADER, &header);
}

/* The hop-by-hop header of a jumbogram (RFC 2675 2), right after the fixed header: Next Header,
 * Hdr Ext Len 0, then the Jumbo Payload option (type 0xC2, 4 bytes of data: the packet's length
 * past the fixed header, this header included). The fixed header's Payload Length is 0. */
static void write_jumbo_header(uint8_t *out, uint8_t next_header, size_t jumbo_length)
{
    out[0] = next_header;
    out[1] = 0;
    out[2] = USTACK_IPV6_OPTION_JUMBO;
    out[3] = 4;
    ustack_write32(out + 4, (uint32_t)jumbo_length);
}

static int build_tcp6_packet(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                             uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                             const struct ustack_tcp_spec *spec, const uint8_t *payload, size_t payload_length,
                             int payload_in_place)
{
    if (capacity < USTACK_IPV6_HEADER + USTACK_IPV6_JUMBO_HEADER)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    /* A segment built with its checksum partial is cut by the kernel (TSO): past 65535 bytes of
     * TCP it is a jumbogram (RFC 2675), as Linux's IPv6 BIG TCP builds them, up to the same 256 KiB
     * as over IPv4. One built whole goes on a wire as it is, and no TUN link carries jumbograms. */
    int partial = payload_in_place == USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL;
    if (payload_length > (partial ? USTACK_LARGEST_BIG_PACKET : MAX_IPV6_PAYLOAD))
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    /* Where the TCP header goes: past room for the hop-by-hop header wherever the segment may not
     * fit the 16-bit field (its header is 20 to 60 bytes); moved back below if it fits after all
     * (the payload stays where it is: only the header moves). */
    int may_be_jumbo = partial && payload_length + USTACK_TCP_MIN_HEADER + USTACK_TCP_MAX_OPTIONS > MAX_IPV6_PAYLOAD;
    size_t tcp_start = USTACK_IPV6_HEADER + (may_be_jumbo ? USTACK_IPV6_JUMBO_HEADER : 0);
    /* RFC 2675 4: the pseudo-header's Upper-Layer Packet Length is the TCP length, 32 bits wide,
     * which ustack_write_tcp adds in (RFC 8200 8.1). */
    uint32_t address_sum = ustack_pseudo_header_sum6(src, dst, USTACK_PROTOCOL_TCP, 0);
    int segment_length = ustack_write_tcp(out + tcp_start, capacity - tcp_start, spec, address_sum, payload,
                                          payload_length, payload_in_place);
    if (segment_length < 0)
        return segment_length;
    int jumbo = may_be_jumbo && (size_t)segment_length > MAX_IPV6_PAYLOAD;
    if (may_be_jumbo && !jumbo)
        memmove(out + USTACK_IPV6_HEADER, out + tcp_start, (size_t)segment_length - payload_length);
    if (jumbo) {
        size_t jumbo_length = USTACK_IPV6_JUMBO_HEADER + (size_t)segment_length;
        if (USTACK_IPV6_HEADER + jumbo_length > USTACK_LARGEST_BIG_PACKET)
            return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
        write_fixed_header(out, src, dst, NEXT_HOP_BY_HOP, hop_limit, flow_label, traffic_class, 0);
        write_jumbo_header(out + USTACK_IPV6_HEADER, USTACK_PROTOCOL_TCP, jumbo_length);
        return (int)(USTACK_IPV6_HEADER + jumbo_length);
    }
    if (segment_length > MAX_IPV6_PAYLOAD)
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    write_fixed_header(out, src, dst, USTACK_PROTOCOL_TCP, hop_limit, flow_label, traffic_class,
                       (size_t)segment_length);
    return USTACK_IPV6_HEADER + segment_length;
}

int ustack_build_tcp6_packet(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                             uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                             const struct ustack_tcp_spec *spec, const uint8_t *payload, size_t payload_length)
{
    return build_tcp6_packet(out, capacity, src, dst, hop_limit, flow_label, traffic_class, spec, payload,
                             payload_length, USTACK_PAYLOAD_COPIED);
}

int ustack_build_tcp6_headers(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                              uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                              const struct ustack_tcp_spec *spec, const uint8_t *payload, size_t payload_length)
{
    return build_tcp6_packet(out, capacity, src, dst, hop_limit, flow_label, traffic_class, spec, payload,
                             payload_length, USTACK_PAYLOAD_IN_PLACE);
}

int ustack_build_tcp6_headers_partial(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                                      uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                                      const struct ustack_tcp_spec *spec, size_t payload_length)
{
    return build_tcp6_packet(out, capacity, src, dst, hop_limit, flow_label, traffic_class, spec, NULL,
                             payload_length, USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL);
}

/* rest_of_header is bytes 4..7: identifier << 16 | sequence for echo, the MTU for packet too
 * big, the pointer for parameter problem, zero for the other errors (RFC 4443 3 and 4). */
int ustack_build_icmp6_packet(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                              uint8_t hop_limit, uint8_t type, uint8_t code, uint32_t rest_of_header,
                              const uint8_t *data, size_t data_length)
{
    size_t message_length = USTACK_ICMP_HEADER + data_length;
    if (data_length > MAX_IPV6_PAYLOAD || message_length > MAX_IPV6_PAYLOAD)
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    if (USTACK_IPV6_HEADER + message_length > capacity)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    uint8_t *message = out + USTACK_IPV6_HEADER;
    message[0] = type;
    message[1] = code;
    ustack_write16(message + 2, 0);
    ustack_write32(message + 4, rest_of_header);
    if (data_length > 0)
        memcpy(message + USTACK_ICMP_HEADER, data, data_length);
    /* RFC 4443 2.3: the checksum covers the pseudo-header too, unlike ICMPv4's. */
    uint32_t sum = ustack_pseudo_header_sum6(src, dst, USTACK_PROTOCOL_ICMPV6, (uint32_t)message_length);
    ustack_write16(message + 2, ustack_checksum_finish(ustack_checksum_add(sum, message, message_length)));
    write_fixed_header(out, src, dst, USTACK_PROTOCOL_ICMPV6, hop_limit, 0, 0, message_length);
    return (int)(USTACK_IPV6_HEADER + message_length);
}
