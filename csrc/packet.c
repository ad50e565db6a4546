/* Whole IPv4 packets (IPv6 ones are handed to ipv6.c): one call per packet in each direction (DESIGN.md rule 4).
 *
 * Receive: ustack_parse_packet validates the IP header and then, for an unfragmented TCP or ICMP
 * packet, the transport header with its checksum. Send: ustack_build_tcp_packet and
 * ustack_build_icmp_packet write the IP header, the transport header and the data, with both
 * checksums, into the caller's buffer.
 */
#include <string.h>

#include "wire.h"

#define MAX_IPV4_PACKET USTACK_IPV4_LARGEST_PACKET

static int parse_packet(const uint8_t *packet, size_t length, struct ustack_packet_fields *out, int tcp_checksum_known)
{
    /* The version nibble picks the family (RFC 8200 3); anything but 6 goes to the IPv4 parser,
     * which names a wrong version. */
    if (length > 0 && (packet[0] >> 4) == 6)
        return ustack_parse_packet6(packet, length, out, tcp_checksum_known);
    out->version = 4;
    int reason = ustack_parse_ipv4(packet, length, &out->ip);
    if (reason != USTACK_OK)
        return reason;
    const uint8_t *payload = packet + out->ip.header_length;
    size_t payload_length = ustack_ipv4_total_length(packet, length) - out->ip.header_length;
    out->transport = USTACK_TRANSPORT_NONE;
    out->payload_offset = out->ip.header_length;
    out->payload_length = (uint32_t)payload_length;

    /* A fragment carries only part of a transport header, and its checksum covers the whole
     * reassembled datagram (RFC 791 3.2): nothing more to check here. */
    if (out->ip.more_fragments || out->ip.fragment_offset != 0)
        return USTACK_OK;

    if (out->ip.protocol == USTACK_PROTOCOL_TCP) {
        reason = tcp_checksum_known ? ustack_parse_tcp_checksum_known(payload, payload_length, &out->tcp)
                                    : ustack_parse_tcp(payload, payload_length, out->ip.src, out->ip.dst, &out->tcp);
        if (reason != USTACK_OK)
            return reason;
        out->transport = USTACK_TRANSPORT_TCP;
        out->payload_offset += out->tcp.header_length;
        out->payload_length -= out->tcp.header_length;
    } else if (out->ip.protocol == USTACK_PROTOCOL_ICMP) {
        reason = ustack_parse_icmp(payload, payload_length, &out->icmp);
        if (reason != USTACK_OK)
            return reason;
        out->transport = USTACK_TRANSPORT_ICMP;
        out->payload_offset += USTACK_ICMP_HEADER;
        out->payload_length -= USTACK_ICMP_HEADER;
    }
    return USTACK_OK;
}

int ustack_parse_packet(const uint8_t *packet, size_t length, struct ustack_packet_fields *out)
{
    return parse_packet(packet, length, out, 0);
}

int ustack_parse_packet_tcp_checksum_known(const uint8_t *packet, size_t length, struct ustack_packet_fields *out)
{
    return parse_packet(packet, length, out, 1);
}

static int build_tcp_packet(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                            const uint8_t *payload, size_t payload_length, int payload_in_place)
{
    if (capacity < USTACK_IPV4_MIN_HEADER)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    /* A segment built with its checksum partial is cut by the kernel (TSO): it may be an IPv4 BIG
     * TCP packet (ustack_ipv4_total_length). One built whole goes on a wire as it is. */
    size_t largest = payload_in_place == USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL ? USTACK_LARGEST_BIG_PACKET
                                                                                : MAX_IPV4_PACKET;
    if (payload_length > largest)
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    uint32_t address_sum = ustack_pseudo_header_sum(spec->src, spec->dst, USTACK_PROTOCOL_TCP, 0);
    int segment_length = ustack_write_tcp(out + USTACK_IPV4_MIN_HEADER, capacity - USTACK_IPV4_MIN_HEADER,
                                          spec, address_sum, payload, payload_length, payload_in_place);
    if (segment_length < 0)
        return segment_length;
    size_t total_length = USTACK_IPV4_MIN_HEADER + (size_t)segment_length;
    if (total_length > largest)
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    struct ustack_ipv4_fields ip = {
        .src = spec->src,
        .dst = spec->dst,
        .protocol = USTACK_PROTOCOL_TCP,
        .ttl = spec->ttl,
        .total_length = total_length > MAX_IPV4_PACKET ? 0 : (uint16_t)total_length, /* 0: BIG TCP */
        .identification = spec->identification,
        .dont_fragment = spec->dont_fragment,
        .header_length = USTACK_IPV4_MIN_HEADER,
        .tos = spec->tos,
    };
    ustack_build_ipv4_header(out, capacity, &ip);
    return (int)total_length;
}

int ustack_build_tcp_packet(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                            const uint8_t *payload, size_t payload_length)
{
    return build_tcp_packet(out, capacity, spec, payload, payload_length, USTACK_PAYLOAD_COPIED);
}

int ustack_build_tcp_headers(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                             const uint8_t *payload, size_t payload_length)
{
    return build_tcp_packet(out, capacity, spec, payload, payload_length, USTACK_PAYLOAD_IN_PLACE);
}

int ustack_build_tcp_headers_partial(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                                     size_t payload_length)
{
    return build_tcp_packet(out, capacity, spec, NULL, payload_length, USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL);
}

/* rest_of_header is bytes 4..7 of the ICMP header: identifier << 16 | sequence for echo,
 * the next-hop MTU for fragmentation needed, zero for most errors (RFC 792). */
int ustack_build_icmp_packet(uint8_t *out, size_t capacity, uint32_t src, uint32_t dst, uint8_t ttl,
                             uint16_t identification, uint8_t type, uint8_t code, uint32_t rest_of_header,
                             const uint8_t *data, size_t data_length)
{
    size_t total_length = USTACK_IPV4_MIN_HEADER + USTACK_ICMP_HEADER + data_length;
    if (data_length > MAX_IPV4_PACKET || total_length > MAX_IPV4_PACKET)
        return -USTACK_REASON_BUILD_PACKET_TOO_LONG;
    if (total_length > capacity)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    uint8_t *message = out + USTACK_IPV4_MIN_HEADER;
    message[0] = type;
    message[1] = code;
    ustack_write16(message + 2, 0);
    ustack_write32(message + 4, rest_of_header);
    if (data_length > 0)
        memcpy(message + USTACK_ICMP_HEADER, data, data_length);
    ustack_write16(message + 2, ustack_checksum(message, USTACK_ICMP_HEADER + data_length));
    struct ustack_ipv4_fields ip = {
        .src = src,
        .dst = dst,
        .protocol = USTACK_PROTOCOL_ICMP,
        .ttl = ttl,
        .total_length = (uint16_t)total_length,
        .identification = identification,
        .header_length = USTACK_IPV4_MIN_HEADER,
    };
    ustack_build_ipv4_header(out, capacity, &ip);
    return (int)total_length;
}
