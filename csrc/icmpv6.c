/* ICMPv6 (RFC 4443): echo request/reply, and the error messages that quote the packet that caused
 * them (destination unreachable, packet too big, time exceeded, parameter problem).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   |  Identifier / MTU / Pointer / Unused (32 bits, by type)        |
 *   |  Data ... (echo data, or as much of the invoking packet as fits in 1,280 bytes)
 *
 * Neighbour discovery (RFC 4861) and MLD are ICMPv6 too, but a TUN device carries IP packets with
 * no link-layer addresses to resolve: those messages are accepted as type, code and data only.
 */
#include "wire.h"

#define TYPE_DESTINATION_UNREACHABLE 1
#define TYPE_PACKET_TOO_BIG 2
#define TYPE_TIME_EXCEEDED 3
#define TYPE_PARAMETER_PROBLEM 4
#define QUOTED_TCP_LENGTH 8 /* ports and sequence number: what an error must show to be matched */

/* The quoted packet of an error message: read, not validated as a received packet would be (no
 * checksum: RFC 5927 4.1 asks for the TCP sequence check instead; its payload length may exceed
 * what was quoted). It must start with a whole IPv6 header. Its extension headers are walked as far
 * as they were quoted; when that reaches a TCP header with 8 bytes, ports and sequence are read. */
static int parse_quote(const uint8_t *quote, size_t length, struct ustack_icmp6_fields *out)
{
    if (length < USTACK_IPV6_HEADER || (quote[0] >> 4) != 6)
        return USTACK_REASON_ICMPV6_BAD_QUOTE;
    struct ustack_ipv6_fields *ip = &out->quoted_ip;
    ustack_read_ipv6_fixed(quote, ip);
    out->has_quote = 1;
    size_t available = USTACK_IPV6_HEADER + (size_t)ip->payload_length;
    if (available > length)
        available = length;
    uint8_t first_next_header = ip->protocol;
    if (ustack_walk_ipv6_chain(quote, available, ip) != USTACK_OK) {
        /* A chain cut short by the quote: the header is still worth reporting, the TCP part not. */
        ip->protocol = first_next_header;
        ip->header_length = USTACK_IPV6_HEADER;
        return USTACK_OK;
    }
    if (ip->protocol == USTACK_PROTOCOL_TCP && ip->fragment_offset == 0 &&
        available - ip->header_length >= QUOTED_TCP_LENGTH) {
        const uint8_t *tcp = quote + ip->header_length;
        out->quote_is_tcp = 1;
        out->quoted_src_port = ustack_read16(tcp);
        out->quoted_dst_port = ustack_read16(tcp + 2);
        out->quoted_seq = ustack_read32(tcp + 4);
    }
    return USTACK_OK;
}

int ustack_parse_icmp6(const uint8_t *message, size_t length, const uint8_t *src, const uint8_t *dst,
                       struct ustack_icmp6_fields *out)
{
    if (length < USTACK_ICMP_HEADER)
        return USTACK_REASON_ICMPV6_TRUNCATED;
    uint32_t sum = ustack_pseudo_header_sum6(src, dst, USTACK_PROTOCOL_ICMPV6, (uint32_t)length);
    if (ustack_checksum_finish(ustack_checksum_add(sum, message, length)) != 0)
        return USTACK_REASON_ICMPV6_BAD_CHECKSUM;
    out->type = message[0];
    out->code = message[1];
    out->identifier = ustack_read16(message + 4);
    out->sequence = ustack_read16(message + 6);
    out->has_quote = 0;
    out->quote_is_tcp = 0;
    out->mtu = 0;
    out->pointer = 0;
    switch (out->type) {
    case TYPE_PACKET_TOO_BIG: /* RFC 4443 3.2 */
        out->mtu = ustack_read32(message + 4);
        return parse_quote(message + USTACK_ICMP_HEADER, length - USTACK_ICMP_HEADER, out);
    case TYPE_PARAMETER_PROBLEM: /* RFC 4443 3.4: the offset of the offending byte */
        out->pointer = ustack_read32(message + 4);
        return parse_quote(message + USTACK_ICMP_HEADER, length - USTACK_ICMP_HEADER, out);
    case TYPE_DESTINATION_UNREACHABLE:
    case TYPE_TIME_EXCEEDED:
        return parse_quote(message + USTACK_ICMP_HEADER, length - USTACK_ICMP_HEADER, out);
    default:
        return USTACK_OK; /* echo (128, 129) and the others: type, code, bytes 4-7 and data */
    }
}
