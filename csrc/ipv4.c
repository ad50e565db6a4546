/* IPv4 header parse and build (RFC 791 3.1).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |Type of Service|          Total Length         |
 *   |         Identification        |Flags|      Fragment Offset    |
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   |                       Source Address                          |
 *   |                    Destination Address                        |
 *   |                    Options (IHL > 5)                          |
 */
#include "wire.h"

#define FLAG_DONT_FRAGMENT 0x4000
#define FLAG_MORE_FRAGMENTS 0x2000
#define FRAGMENT_OFFSET_MASK 0x1fff

/* The Total Length field, or for an IPv4 BIG TCP packet the frame's length. Linux (6.3 and later,
 * "net: add support for ipv4 big tcp") builds TCP super-segments longer than the 16-bit field can
 * say, up to its gso_ipv4_max_size, with Total Length 0: the length is then the frame's. Such a
 * packet never leaves the host whole (the kernel cuts it into segments of the MSS before any
 * wire) and is never a fragment, so 0 is read that way only for an unfragmented TCP packet whose
 * frame is longer than 65535 bytes (and 256 KiB at most): anywhere else a Total Length of 0 is the
 * malformed header it always was. The caller has checked that the 20-byte header is there. */
size_t ustack_ipv4_total_length(const uint8_t *packet, size_t length)
{
    size_t total_length = ustack_read16(packet + 2);
    if (total_length == 0 && length > USTACK_IPV4_LARGEST_PACKET && length <= USTACK_LARGEST_BIG_PACKET
        && packet[9] == USTACK_PROTOCOL_TCP && (packet[6] & 0x3f) == 0 && packet[7] == 0)
        return length;
    return total_length;
}

/* Validates the header in the order a receiver must (RFC 1122 3.2.1): structure first, so that
 * every later read is inside the buffer, then the checksum. IP options are accepted and skipped
 * (header_length tells where the payload starts). Bytes past total_length (link padding) are
 * ignored. */
int ustack_parse_ipv4(const uint8_t *packet, size_t length, struct ustack_ipv4_fields *out)
{
    if (length < USTACK_IPV4_MIN_HEADER)
        return USTACK_REASON_IPV4_TRUNCATED;
    if ((packet[0] >> 4) != 4)
        return USTACK_REASON_IPV4_BAD_VERSION;
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    if (header_length < USTACK_IPV4_MIN_HEADER || header_length > length)
        return USTACK_REASON_IPV4_BAD_HEADER_LENGTH;
    size_t total_length = ustack_ipv4_total_length(packet, length);
    if (total_length < header_length || total_length > length)
        return USTACK_REASON_IPV4_BAD_TOTAL_LENGTH;
    /* RFC 791 3.1 "Header Checksum": the sum over the header, checksum field included, is 0xffff
     * in one's complement when the header is intact, so the finished checksum comes out as 0. */
    if (ustack_checksum(packet, header_length) != 0)
        return USTACK_REASON_IPV4_BAD_CHECKSUM;

    uint16_t flags_and_offset = ustack_read16(packet + 6);
    out->src = ustack_read32(packet + 12);
    out->dst = ustack_read32(packet + 16);
    out->protocol = packet[9];
    out->ttl = packet[8];
    out->total_length = ustack_read16(packet + 2); /* the field as sent: 0 for a BIG TCP packet */
    out->identification = ustack_read16(packet + 4);
    out->dont_fragment = (flags_and_offset & FLAG_DONT_FRAGMENT) != 0;
    out->more_fragments = (flags_and_offset & FLAG_MORE_FRAGMENTS) != 0;
    out->fragment_offset = (uint16_t)((flags_and_offset & FRAGMENT_OFFSET_MASK) * 8);
    out->header_length = (uint8_t)header_length;
    out->tos = packet[1];
    return USTACK_OK;
}

/* Writes a 20-byte header (no IP options) with its checksum. header->total_length must already
 * count the payload; fragment_offset is in bytes and must be a multiple of 8. Returns 20, or minus
 * a reason. */
int ustack_build_ipv4_header(uint8_t *out, size_t capacity, const struct ustack_ipv4_fields *header)
{
    if (capacity < USTACK_IPV4_MIN_HEADER)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;
    uint16_t flags_and_offset = (uint16_t)((header->fragment_offset / 8) & FRAGMENT_OFFSET_MASK);
    if (header->dont_fragment)
        flags_and_offset |= FLAG_DONT_FRAGMENT;
    if (header->more_fragments)
        flags_and_offset |= FLAG_MORE_FRAGMENTS;
    out[0] = 0x45; /* version 4, IHL 5 */
    out[1] = header->tos;
    ustack_write16(out + 2, header->total_length);
    ustack_write16(out + 4, header->identification);
    ustack_write16(out + 6, flags_and_offset);
    out[8] = header->ttl;
    out[9] = header->protocol;
    ustack_write16(out + 10, 0);
    ustack_write32(out + 12, header->src);
    ustack_write32(out + 16, header->dst);
    ustack_write16(out + 10, ustack_checksum(out, USTACK_IPV4_MIN_HEADER));
    return USTACK_IPV4_MIN_HEADER;
}
