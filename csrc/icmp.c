/* ICMPv4 (RFC 792): echo request/reply, and the error messages that quote the datagram that
 * caused them (destination unreachable, source quench, time exceeded, parameter problem).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   |     Identifier (echo)         |     Sequence Number (echo)    |
 *   |     Data ...  (echo data, or IP header + 64 bits of the original datagram)
 */
#include "wire.h"

#define TYPE_ECHO_REPLY 0
#define TYPE_DESTINATION_UNREACHABLE 3
#define TYPE_SOURCE_QUENCH 4
#define TYPE_ECHO_REQUEST 8
#define TYPE_TIME_EXCEEDED 11
#define TYPE_PARAMETER_PROBLEM 12
#define CODE_FRAGMENTATION_NEEDED 4
#define QUOTED_DATA_LENGTH 8 /* RFC 792: "the first 64 bits of the original datagram's data" */

/* The quoted header of an error message: read, not validated as a received packet would be. Its
 * checksum is not checked (RFC 5927 4.1 asks for the TCP sequence check instead), and its total
 * length may exceed what was quoted. But it must be an IPv4 header followed by 8 bytes, or the
 * message cannot be matched to a connection. */
static int parse_quote(const uint8_t *quote, size_t length, struct ustack_icmp_fields *out)
{
    if (length < USTACK_IPV4_MIN_HEADER || (quote[0] >> 4) != 4)
        return USTACK_REASON_ICMP_BAD_QUOTE;
    size_t header_length = (size_t)(quote[0] & 0x0f) * 4;
    if (header_length < USTACK_IPV4_MIN_HEADER || header_length + QUOTED_DATA_LENGTH > length)
        return USTACK_REASON_ICMP_BAD_QUOTE;
    uint16_t flags_and_offset = ustack_read16(quote + 6);
    struct ustack_ipv4_fields *ip = &out->quoted_ip;
    ip->src = ustack_read32(quote + 12);
    ip->dst = ustack_read32(quote + 16);
    ip->protocol = quote[9];
    ip->ttl = quote[8];
    ip->total_length = ustack_read16(quote + 2);
    ip->identification = ustack_read16(quote + 4);
    ip->dont_fragment = (flags_and_offset & 0x4000) != 0;
    ip->more_fragments = (flags_and_offset & 0x2000) != 0;
    ip->fragment_offset = (uint16_t)((flags_and_offset & 0x1fff) * 8);
    ip->header_length = (uint8_t)header_length;
    ip->tos = quote[1];
    out->has_quote = 1;
    if (ip->protocol == USTACK_PROTOCOL_TCP) {
        /* The first 8 bytes of the TCP header: ports and sequence number (RFC 9293 3.1). */
        const uint8_t *tcp = quote + header_length;
        out->quote_is_tcp = 1;
        out->quoted_src_port = ustack_read16(tcp);
        out->quoted_dst_port = ustack_read16(tcp + 2);
        out->quoted_seq = ustack_read32(tcp + 4);
    }
    return USTACK_OK;
}

/* Validates one message (the IP payload): length, checksum over the whole message (RFC 792
 * "Checksum"), then the fields of its type. Data starts at byte 8. */
int ustack_parse_icmp(const uint8_t *message, size_t length, struct ustack_icmp_fields *out)
{
    if (length < USTACK_ICMP_HEADER)
        return USTACK_REASON_ICMP_TRUNCATED;
    if (ustack_checksum(message, length) != 0)
        return USTACK_REASON_ICMP_BAD_CHECKSUM;
    out->type = message[0];
    out->code = message[1];
    /* Bytes 4-7: identifier and sequence number for echo; reported as they are for every type
     * (parameter problem keeps its pointer in byte 4, RFC 792). */
    out->identifier = ustack_read16(message + 4);
    out->sequence = ustack_read16(message + 6);
    out->next_hop_mtu = 0;
    out->has_quote = 0;
    out->quote_is_tcp = 0;
    switch (out->type) {
    case TYPE_ECHO_REQUEST:
    case TYPE_ECHO_REPLY:
        return USTACK_OK;
    case TYPE_DESTINATION_UNREACHABLE:
        /* RFC 1191 4: fragmentation needed carries the next-hop MTU in the low 16 bits. */
        if (out->code == CODE_FRAGMENTATION_NEEDED)
            out->next_hop_mtu = ustack_read16(message + 6);
        return parse_quote(message + USTACK_ICMP_HEADER, length - USTACK_ICMP_HEADER, out);
    case TYPE_SOURCE_QUENCH:
    case TYPE_TIME_EXCEEDED:
    case TYPE_PARAMETER_PROBLEM:
        return parse_quote(message + USTACK_ICMP_HEADER, length - USTACK_ICMP_HEADER, out);
    default:
        return USTACK_OK; /* other types: type, code and data only */
    }
}
