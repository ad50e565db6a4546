/* TCP header parse and build (RFC 9293 3.1), with the options of RFC 9293 3.2 (EOL, NOP, MSS),
 * RFC 7323 (window scale, timestamps) and RFC 2018 (SACK-permitted, SACK).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   |                        Sequence Number                        |
 *   |                    Acknowledgment Number                      |
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |           Checksum            |         Urgent Pointer        |
 *   |                           [Options]                           |
 */
#include <string.h>

#include "wire.h"

/* Option kinds (RFC 9293 3.2 and the IANA registry) and their fixed lengths. */
#define OPTION_EOL 0
#define OPTION_NOP 1
#define OPTION_MSS 2
#define OPTION_WINDOW_SCALE 3
#define OPTION_SACK_PERMITTED 4
#define OPTION_SACK 5
#define OPTION_TIMESTAMPS 8
#define LENGTH_MSS 4
#define LENGTH_WINDOW_SCALE 3
#define LENGTH_SACK_PERMITTED 2
#define LENGTH_TIMESTAMPS 10
#define SACK_BLOCK_LENGTH 8
#define MAX_SACK_BLOCKS 4

/* Walks the options area (RFC 9293 3.1 "Options"). Every option but EOL and NOP has a length byte
 * that counts the kind and length bytes themselves, so an unknown option can be skipped by it
 * (RFC 9293 3.2, MUST-68). A length that is < 2, runs past the area, or is wrong for a known kind
 * makes the segment malformed: we reject it rather than guess where the next option starts.
 * When an option appears twice the last one wins. */
static int parse_options(const uint8_t *options, size_t length, struct ustack_tcp_fields *out)
{
    size_t i = 0;
    while (i < length) {
        uint8_t kind = options[i];
        if (kind == OPTION_EOL)
            break; /* the rest is padding */
        if (kind == OPTION_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= length)
            return USTACK_REASON_TCP_BAD_OPTION_LENGTH; /* no room for the length byte */
        size_t option_length = options[i + 1];
        if (option_length < 2 || option_length > length - i)
            return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
        const uint8_t *value = options + i + 2;
        switch (kind) {
        case OPTION_MSS: /* RFC 9293 3.7.1 */
            if (option_length != LENGTH_MSS)
                return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
            out->options_present |= USTACK_OPTION_MSS;
            out->mss = ustack_read16(value);
            break;
        case OPTION_WINDOW_SCALE: /* RFC 7323 2.2 */
            if (option_length != LENGTH_WINDOW_SCALE)
                return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
            out->options_present |= USTACK_OPTION_WINDOW_SCALE;
            out->window_scale = value[0];
            break;
        case OPTION_SACK_PERMITTED: /* RFC 2018 2 */
            if (option_length != LENGTH_SACK_PERMITTED)
                return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
            out->options_present |= USTACK_OPTION_SACK_PERMITTED;
            break;
        case OPTION_SACK: { /* RFC 2018 3: 2 + 8n bytes, n from 1 to 4 */
            size_t blocks = (option_length - 2) / SACK_BLOCK_LENGTH;
            if (option_length < 2 + SACK_BLOCK_LENGTH || (option_length - 2) % SACK_BLOCK_LENGTH != 0 ||
                blocks > MAX_SACK_BLOCKS)
                return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
            for (size_t block = 0; block < blocks; block++) {
                out->sack_blocks[2 * block] = ustack_read32(value + block * SACK_BLOCK_LENGTH);
                out->sack_blocks[2 * block + 1] = ustack_read32(value + block * SACK_BLOCK_LENGTH + 4);
            }
            out->sack_block_count = (uint8_t)blocks;
            break;
        }
        case OPTION_TIMESTAMPS: /* RFC 7323 3.2 */
            if (option_length != LENGTH_TIMESTAMPS)
                return USTACK_REASON_TCP_BAD_OPTION_LENGTH;
            out->options_present |= USTACK_OPTION_TIMESTAMPS;
            out->ts_val = ustack_read32(value);
            out->ts_ecr = ustack_read32(value + 4);
            break;
        default: /* unknown: skipped by its length */
            break;
        }
        i += option_length;
    }
    return USTACK_OK;
}

/* The header's length is there and its data offset is possible. */
static int check_structure(const uint8_t *segment, size_t length)
{
    if (length < USTACK_TCP_MIN_HEADER)
        return USTACK_REASON_TCP_TRUNCATED;
    size_t header_length = (size_t)(segment[12] >> 4) * 4;
    if (header_length < USTACK_TCP_MIN_HEADER || header_length > length)
        return USTACK_REASON_TCP_BAD_DATA_OFFSET;
    return USTACK_OK;
}

/* The fields of a segment check_structure accepted, options last. */
static int read_fields(const uint8_t *segment, struct ustack_tcp_fields *out)
{
    size_t header_length = (size_t)(segment[12] >> 4) * 4;
    out->src_port = ustack_read16(segment);
    out->dst_port = ustack_read16(segment + 2);
    out->seq = ustack_read32(segment + 4);
    out->ack = ustack_read32(segment + 8);
    /* RFC 9293 3.1: the reserved bits of byte 12 are ignored on receipt; byte 13 holds all eight
     * flags, kept as they are (what SYN+FIN or SYN+RST mean is the TCP core's decision). */
    out->flags = segment[13];
    out->header_length = (uint8_t)header_length;
    out->window = ustack_read16(segment + 14);
    out->urgent_pointer = ustack_read16(segment + 18);
    /* Absent options read as zero, so equal options always give equal fields (Python uses the
     * bytes from options_present to ts_ecr as a dictionary key, reserved included). */
    out->options_present = 0;
    out->window_scale = 0;
    out->mss = 0;
    out->sack_block_count = 0;
    out->reserved = 0;
    out->ts_val = 0;
    out->ts_ecr = 0;
    return parse_options(segment + USTACK_TCP_MIN_HEADER, header_length - USTACK_TCP_MIN_HEADER, out);
}

/* Validates one segment (the IP payload): structure, then checksum over the pseudo-header
 * (RFC 9293 3.1 "Checksum"), then options. The data starts at out->header_length. */
int ustack_parse_tcp(const uint8_t *segment, size_t length, uint32_t src, uint32_t dst,
                     struct ustack_tcp_fields *out)
{
    return ustack_parse_tcp_summed(segment, length, ustack_pseudo_header_sum(src, dst, USTACK_PROTOCOL_TCP, 0), out);
}

/* The same for either family: `address_sum` is the pseudo-header's sum without the TCP length
 * (RFC 9293 3.1 for IPv4, RFC 8200 8.1 for IPv6). */
int ustack_parse_tcp_summed(const uint8_t *segment, size_t length, uint32_t address_sum, struct ustack_tcp_fields *out)
{
    int reason = check_structure(segment, length);
    if (reason != USTACK_OK)
        return reason;
    uint32_t sum = address_sum + (uint32_t)length; /* checksum_add folds the carries */
    if (ustack_checksum_finish(ustack_checksum_add(sum, segment, length)) != 0)
        return USTACK_REASON_TCP_BAD_CHECKSUM;
    return read_fields(segment, out);
}

/* For a segment whose checksum its link completed or the kernel verified: the same checks, in the
 * same order, but one pass over the data fewer (up to 64 KB for a super-segment; issue 12). */
int ustack_parse_tcp_checksum_known(const uint8_t *segment, size_t length, struct ustack_tcp_fields *out)
{
    int reason = check_structure(segment, length);
    if (reason != USTACK_OK)
        return reason;
    return read_fields(segment, out);
}

/* --- building ------------------------------------------------------------------------------ */

/* A cursor over the options area being written; the area is 40 bytes, and every writer below
 * checks the room it needs first (the layouts are built to fit, the checks keep that honest). */
struct option_writer {
    uint8_t bytes[USTACK_TCP_MAX_OPTIONS];
    size_t length;
};

static void put_nops(struct option_writer *writer, size_t count)
{
    while (count-- > 0 && writer->length < USTACK_TCP_MAX_OPTIONS)
        writer->bytes[writer->length++] = OPTION_NOP;
}

static void put_mss(struct option_writer *writer, uint16_t mss)
{
    if (writer->length + LENGTH_MSS > USTACK_TCP_MAX_OPTIONS)
        return;
    uint8_t *p = writer->bytes + writer->length;
    p[0] = OPTION_MSS;
    p[1] = LENGTH_MSS;
    ustack_write16(p + 2, mss);
    writer->length += LENGTH_MSS;
}

static void put_window_scale(struct option_writer *writer, uint8_t shift)
{
    if (writer->length + LENGTH_WINDOW_SCALE > USTACK_TCP_MAX_OPTIONS)
        return;
    uint8_t *p = writer->bytes + writer->length;
    p[0] = OPTION_WINDOW_SCALE;
    p[1] = LENGTH_WINDOW_SCALE;
    p[2] = shift;
    writer->length += LENGTH_WINDOW_SCALE;
}

static void put_sack_permitted(struct option_writer *writer)
{
    if (writer->length + LENGTH_SACK_PERMITTED > USTACK_TCP_MAX_OPTIONS)
        return;
    writer->bytes[writer->length] = OPTION_SACK_PERMITTED;
    writer->bytes[writer->length + 1] = LENGTH_SACK_PERMITTED;
    writer->length += LENGTH_SACK_PERMITTED;
}

static void put_timestamps(struct option_writer *writer, uint32_t ts_val, uint32_t ts_ecr)
{
    if (writer->length + LENGTH_TIMESTAMPS > USTACK_TCP_MAX_OPTIONS)
        return;
    uint8_t *p = writer->bytes + writer->length;
    p[0] = OPTION_TIMESTAMPS;
    p[1] = LENGTH_TIMESTAMPS;
    ustack_write32(p + 2, ts_val);
    ustack_write32(p + 6, ts_ecr);
    writer->length += LENGTH_TIMESTAMPS;
}

/* As many SACK blocks as fit (RFC 2018 3: with timestamps only three fit in 40 bytes). */
static void put_sack(struct option_writer *writer, const uint32_t *edges, size_t count)
{
    if (count > MAX_SACK_BLOCKS)
        count = MAX_SACK_BLOCKS;
    size_t room = USTACK_TCP_MAX_OPTIONS - writer->length;
    if (room < 2 + SACK_BLOCK_LENGTH)
        return;
    if (count > (room - 2) / SACK_BLOCK_LENGTH)
        count = (room - 2) / SACK_BLOCK_LENGTH;
    uint8_t *p = writer->bytes + writer->length;
    p[0] = OPTION_SACK;
    p[1] = (uint8_t)(2 + count * SACK_BLOCK_LENGTH);
    for (size_t block = 0; block < count; block++) {
        ustack_write32(p + 2 + block * SACK_BLOCK_LENGTH, edges[2 * block]);
        ustack_write32(p + 6 + block * SACK_BLOCK_LENGTH, edges[2 * block + 1]);
    }
    writer->length += 2 + count * SACK_BLOCK_LENGTH;
}

/* Linux's order (net/ipv4/tcp_output.c, as seen in captures): MSS; timestamps, preceded by
 * SACK-permitted when both are sent (the two fill 12 bytes), by two NOPs otherwise; SACK-permitted
 * alone as NOP NOP SACK-permitted; NOP window-scale; NOP NOP SACK blocks. Every option ends on a
 * 4-byte boundary, so no padding is needed. */
static void layout_linux(struct option_writer *writer, const struct ustack_tcp_spec *spec)
{
    uint8_t present = spec->options_present;
    if (present & USTACK_OPTION_MSS)
        put_mss(writer, spec->mss);
    if (present & USTACK_OPTION_TIMESTAMPS) {
        if (present & USTACK_OPTION_SACK_PERMITTED)
            put_sack_permitted(writer);
        else
            put_nops(writer, 2);
        put_timestamps(writer, spec->ts_val, spec->ts_ecr);
    } else if (present & USTACK_OPTION_SACK_PERMITTED) {
        put_nops(writer, 2);
        put_sack_permitted(writer);
    }
    if (present & USTACK_OPTION_WINDOW_SCALE) {
        put_nops(writer, 1);
        put_window_scale(writer, spec->window_scale);
    }
    if (spec->sack_block_count > 0 && writer->length + 2 + 2 + SACK_BLOCK_LENGTH <= USTACK_TCP_MAX_OPTIONS) {
        put_nops(writer, 2);
        put_sack(writer, spec->sack_blocks, spec->sack_block_count);
    }
}

/* FreeBSD's order (sys/netinet/tcp_output.c tcp_addoptions, as the FreeBSD packetdrill suite
 * expects it): MSS; NOP window-scale; SACK-permitted; timestamps and SACK each start 2 bytes past
 * a 4-byte boundary, reached with NOPs; the end is padded to 4 bytes with EOL. */
static void layout_freebsd(struct option_writer *writer, const struct ustack_tcp_spec *spec)
{
    uint8_t present = spec->options_present;
    if (present & USTACK_OPTION_MSS)
        put_mss(writer, spec->mss);
    if (present & USTACK_OPTION_WINDOW_SCALE) {
        put_nops(writer, 1);
        put_window_scale(writer, spec->window_scale);
    }
    if (present & USTACK_OPTION_SACK_PERMITTED)
        put_sack_permitted(writer);
    if (present & USTACK_OPTION_TIMESTAMPS) {
        put_nops(writer, (6 - writer->length % 4) % 4);
        put_timestamps(writer, spec->ts_val, spec->ts_ecr);
    }
    if (spec->sack_block_count > 0) {
        size_t padding = (6 - writer->length % 4) % 4;
        if (writer->length + padding + 2 + SACK_BLOCK_LENGTH <= USTACK_TCP_MAX_OPTIONS) {
            put_nops(writer, padding);
            put_sack(writer, spec->sack_blocks, spec->sack_block_count);
        }
    }
    while (writer->length % 4 != 0)
        writer->bytes[writer->length++] = OPTION_EOL;
}

static void write_options(struct option_writer *writer, const struct ustack_tcp_spec *spec)
{
    writer->length = 0;
    if (spec->layout == USTACK_LAYOUT_FREEBSD)
        layout_freebsd(writer, spec);
    else
        layout_linux(writer, spec);
}

int ustack_tcp_options_length(const struct ustack_tcp_spec *spec)
{
    struct option_writer writer;
    write_options(&writer, spec);
    return (int)writer.length;
}

/* Writes the TCP header, options and payload at `segment` and the checksum over the pseudo-header
 * (`address_sum`: its partial sum without the length, for either family). With `payload_in_place`
 * the payload is not copied after the header: the checksum and the returned length still cover
 * it, and the caller sends it from where it is (a large segment: one copy of 64 KB fewer).
 * With USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL the checksum field gets instead the partial sum
 * a TSO device takes (NEEDS_CSUM, include/uapi/linux/virtio_net.h): the pseudo-header with the
 * segment length, folded, not complemented. Neither the header nor the payload is summed: the
 * kernel, cutting the segment, sums each piece from the TCP header on with that field in it, and
 * so does ustack/link/vnet.py complete_checksum for whatever reads the packet as a wire would.
 * That is one pass over up to 64 KB fewer per large segment (issue 12).
 * Returns the segment length, or minus a reason. */
int ustack_write_tcp(uint8_t *segment, size_t capacity, const struct ustack_tcp_spec *spec, uint32_t address_sum,
                     const uint8_t *payload, size_t payload_length, int payload_in_place)
{
    struct option_writer writer;
    write_options(&writer, spec);
    size_t header_length = USTACK_TCP_MIN_HEADER + writer.length;
    if (header_length + (payload_in_place ? 0 : payload_length) > capacity)
        return -USTACK_REASON_BUILD_BUFFER_TOO_SMALL;

    ustack_write16(segment, spec->src_port);
    ustack_write16(segment + 2, spec->dst_port);
    ustack_write32(segment + 4, spec->seq);
    ustack_write32(segment + 8, spec->ack);
    segment[12] = (uint8_t)((header_length / 4) << 4);
    segment[13] = spec->flags;
    ustack_write16(segment + 14, spec->window);
    ustack_write16(segment + 16, 0); /* checksum, computed below */
    ustack_write16(segment + 18, spec->urgent_pointer);
    memcpy(segment + USTACK_TCP_MIN_HEADER, writer.bytes, writer.length);

    size_t length = header_length + payload_length;
    uint32_t sum = address_sum + (uint32_t)length;
    if (payload_in_place == USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL) {
        /* ~finish is the fold: the very field vnet.py's _partial_checksum writes. */
        ustack_write16(segment + 16, (uint16_t)~ustack_checksum_finish(sum));
        return (int)length;
    }
    if (payload_in_place) {
        /* The header is a whole number of 32-bit words: the payload's words line up as if it
         * followed, so its sum simply adds (RFC 1071 2(B)). */
        sum = ustack_checksum_add(ustack_checksum_add(sum, segment, header_length), payload, payload_length);
    } else {
        if (payload_length > 0)
            memcpy(segment + header_length, payload, payload_length);
        sum = ustack_checksum_add(sum, segment, length);
    }
    ustack_write16(segment + 16, ustack_checksum_finish(sum));
    return (int)length;
}
