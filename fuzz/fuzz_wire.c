/* libFuzzer target over the C wire layer (csrc/): the IPv4, IPv6, TCP, ICMP and ICMPv6 parsers,
 * the combined packet parser (both families), and build-then-parse round trips of TCP and ICMP
 * packets over IPv4 and IPv6.
 *
 *   scripts/fuzz [RUNS]      builds this with clang -fsanitize=fuzzer,address,undefined and runs it
 *
 * The first input byte picks a mode; the rest is the packet. Random bytes almost never carry a
 * valid checksum, so the "fixed" modes first write correct checksums into a copy of the input:
 * that lets the fuzzer reach the option and quote parsers behind the checksum checks.
 * Every copy is malloc'ed at exactly the input's size, so AddressSanitizer reports any read past
 * the end, and every accepted packet is checked against invariants (a failed check traps).
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define CHECK(condition)          \
    do {                          \
        if (!(condition))         \
            __builtin_trap();     \
    } while (0)

static void check_reason(int reason) { CHECK(reason >= USTACK_OK && reason < USTACK_REASON_COUNT); }

/* Writes a correct IPv4 header checksum and TCP or ICMP checksum into `packet`, where the header
 * fields make that possible without reading out of bounds. */
static void fix_checksums6(uint8_t *packet, size_t length)
{
    struct ustack_ipv6_fields ip;
    if (ustack_parse_ipv6(packet, length, &ip) != USTACK_OK || ip.more_fragments || ip.fragment_offset != 0)
        return;
    uint8_t *upper = packet + ip.header_length;
    size_t upper_length = USTACK_IPV6_HEADER + (size_t)ip.payload_length - ip.header_length;
    size_t checksum_at;
    if (ip.protocol == USTACK_PROTOCOL_TCP && upper_length >= 18)
        checksum_at = 16;
    else if (ip.protocol == USTACK_PROTOCOL_ICMPV6 && upper_length >= 4)
        checksum_at = 2;
    else
        return;
    ustack_write16(upper + checksum_at, 0);
    uint32_t sum = ustack_pseudo_header_sum6(ip.src, ip.dst, ip.protocol, (uint32_t)upper_length);
    ustack_write16(upper + checksum_at, ustack_checksum_finish(ustack_checksum_add(sum, upper, upper_length)));
}

static void fix_checksums(uint8_t *packet, size_t length)
{
    if (length >= 1 && (packet[0] >> 4) == 6) {
        fix_checksums6(packet, length);
        return;
    }
    if (length < 20 || (packet[0] >> 4) != 4)
        return;
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    size_t total_length = ustack_read16(packet + 2);
    if (header_length < 20 || header_length > length)
        return;
    ustack_write16(packet + 10, 0);
    ustack_write16(packet + 10, ustack_checksum(packet, header_length));
    if (total_length < header_length || total_length > length)
        return;
    uint8_t *payload = packet + header_length;
    size_t payload_length = total_length - header_length;
    if (packet[9] == USTACK_PROTOCOL_TCP && payload_length >= 18) {
        uint32_t src = ustack_read32(packet + 12), dst = ustack_read32(packet + 16);
        ustack_write16(payload + 16, 0);
        uint32_t sum = ustack_pseudo_header_sum(src, dst, USTACK_PROTOCOL_TCP, (uint32_t)payload_length);
        ustack_write16(payload + 16, ustack_checksum_finish(ustack_checksum_add(sum, payload, payload_length)));
    } else if (packet[9] == USTACK_PROTOCOL_ICMP && payload_length >= 4) {
        ustack_write16(payload + 2, 0);
        ustack_write16(payload + 2, ustack_checksum(payload, payload_length));
    }
}

static void parse_whole_packet(const uint8_t *packet, size_t length)
{
    struct ustack_packet_fields fields;
    memset(&fields, 0xa5, sizeof fields);
    int reason = ustack_parse_packet(packet, length, &fields);
    check_reason(reason);
    if (reason != USTACK_OK)
        return;
    if (fields.version == 6) {
        size_t end = USTACK_IPV6_HEADER + (size_t)fields.ip6.payload_length;
        CHECK(end <= length);
        CHECK(fields.ip6.header_length >= USTACK_IPV6_HEADER && fields.ip6.header_length <= end);
        CHECK((size_t)fields.payload_offset + fields.payload_length == end);
        CHECK(fields.ip6.flow_label <= 0xfffff);
        if (fields.transport == USTACK_TRANSPORT_ICMPV6 && fields.icmp6.has_quote)
            CHECK(fields.icmp6.quoted_ip.header_length >= USTACK_IPV6_HEADER &&
                  fields.icmp6.quoted_ip.header_length <= fields.payload_length);
    } else {
        CHECK(fields.version == 4);
        CHECK(fields.ip.header_length >= 20 && fields.ip.header_length <= fields.ip.total_length);
        CHECK(fields.ip.total_length <= length);
        CHECK((size_t)fields.payload_offset + fields.payload_length <= fields.ip.total_length);
    }
    if (fields.transport == USTACK_TRANSPORT_TCP) {
        CHECK(fields.tcp.header_length >= 20 && fields.tcp.header_length <= 60);
        CHECK(fields.tcp.sack_block_count <= 4);
    }
}

static uint8_t *copy_of(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (copy != NULL && size > 0)
        memcpy(copy, data, size);
    return copy;
}

/* Builds a segment from fuzz bytes, parses it back and requires the same fields. */
static void round_trip(const uint8_t *data, size_t size)
{
    struct ustack_tcp_spec spec;
    if (size < sizeof spec)
        return;
    memcpy(&spec, data, sizeof spec);
    spec.options_present &= 0x0f;
    spec.sack_block_count %= 5;
    spec.layout %= 2;
    const uint8_t *payload = data + sizeof spec;
    size_t payload_length = size - sizeof spec;
    static uint8_t packet[70000];
    int length = ustack_build_tcp_packet(packet, sizeof packet, &spec, payload, payload_length);
    if (length < 0) {
        check_reason(-length);
        return;
    }
    uint8_t *exact = copy_of(packet, (size_t)length);
    if (exact == NULL)
        return;
    struct ustack_packet_fields fields;
    int reason = ustack_parse_packet(exact, (size_t)length, &fields);
    CHECK(reason == USTACK_OK);
    CHECK(fields.transport == USTACK_TRANSPORT_TCP);
    CHECK(fields.ip.src == spec.src && fields.ip.dst == spec.dst && fields.ip.ttl == spec.ttl);
    CHECK(fields.ip.tos == spec.tos);
    CHECK(fields.tcp.seq == spec.seq && fields.tcp.ack == spec.ack && fields.tcp.flags == spec.flags);
    CHECK(fields.tcp.window == spec.window && fields.tcp.urgent_pointer == spec.urgent_pointer);
    CHECK(fields.tcp.options_present == spec.options_present);
    CHECK(fields.payload_length == payload_length);
    CHECK(payload_length == 0 || memcmp(exact + fields.payload_offset, payload, payload_length) == 0);
    free(exact);
}

/* Builds an ICMP message from fuzz bytes, parses it back and requires the same fields. */
static void icmp_round_trip(const uint8_t *data, size_t size)
{
    if (size < 8)
        return;
    uint8_t type = data[0], code = data[1];
    uint32_t rest = ustack_read32(data + 2);
    uint16_t identification = ustack_read16(data + 6);
    static uint8_t packet[70000];
    int length = ustack_build_icmp_packet(packet, sizeof packet, 0x0a000001, 0x0a000002, 64, identification, type,
                                          code, rest, data + 8, size - 8);
    if (length < 0) {
        check_reason(-length);
        return;
    }
    uint8_t *exact = copy_of(packet, (size_t)length);
    if (exact == NULL)
        return;
    struct ustack_packet_fields fields;
    int reason = ustack_parse_packet(exact, (size_t)length, &fields);
    check_reason(reason);
    /* Error types need a well-formed quote; every other message must come back as built. */
    if (reason == USTACK_OK) {
        CHECK(fields.transport == USTACK_TRANSPORT_ICMP);
        CHECK(fields.icmp.type == type && fields.icmp.code == code);
        CHECK(fields.icmp.identifier == rest >> 16 && fields.icmp.sequence == (rest & 0xffff));
        CHECK(fields.payload_length == size - 8);
    } else {
        CHECK(reason == USTACK_REASON_ICMP_BAD_QUOTE);
    }
    free(exact);
}

static const uint8_t SOURCE6[16] = {0xfd, 0, 0, 0x77, [15] = 1};
static const uint8_t DESTINATION6[16] = {0xfd, 0, 0, 0x77, [15] = 2};

/* Builds a TCP segment over IPv6 from fuzz bytes, parses it back and requires the same fields. */
static void round_trip6(const uint8_t *data, size_t size)
{
    struct ustack_tcp_spec spec;
    if (size < sizeof spec + 4)
        return;
    memcpy(&spec, data, sizeof spec);
    spec.options_present &= 0x0f;
    spec.sack_block_count %= 5;
    spec.layout %= 2;
    uint32_t flow_label = ustack_read32(data + sizeof spec) & 0xfffff;
    const uint8_t *payload = data + sizeof spec + 4;
    size_t payload_length = size - sizeof spec - 4;
    static uint8_t packet[70000];
    int length = ustack_build_tcp6_packet(packet, sizeof packet, SOURCE6, DESTINATION6, spec.ttl, flow_label,
                                          spec.tos, &spec, payload, payload_length);
    if (length < 0) {
        check_reason(-length);
        return;
    }
    uint8_t *exact = copy_of(packet, (size_t)length);
    if (exact == NULL)
        return;
    struct ustack_packet_fields fields;
    CHECK(ustack_parse_packet(exact, (size_t)length, &fields) == USTACK_OK);
    CHECK(fields.version == 6 && fields.transport == USTACK_TRANSPORT_TCP);
    CHECK(memcmp(fields.ip6.src, SOURCE6, 16) == 0 && memcmp(fields.ip6.dst, DESTINATION6, 16) == 0);
    CHECK(fields.ip6.hop_limit == spec.ttl && fields.ip6.flow_label == flow_label);
    CHECK(fields.ip6.traffic_class == spec.tos);
    CHECK(fields.tcp.seq == spec.seq && fields.tcp.ack == spec.ack && fields.tcp.flags == spec.flags);
    CHECK(fields.tcp.options_present == spec.options_present);
    CHECK(fields.payload_length == payload_length);
    CHECK(payload_length == 0 || memcmp(exact + fields.payload_offset, payload, payload_length) == 0);
    free(exact);
}

/* Builds an ICMPv6 message from fuzz bytes, parses it back and requires the same fields. */
static void icmp6_round_trip(const uint8_t *data, size_t size)
{
    if (size < 6)
        return;
    uint8_t type = data[0], code = data[1];
    uint32_t rest = ustack_read32(data + 2);
    static uint8_t packet[70000];
    int length = ustack_build_icmp6_packet(packet, sizeof packet, SOURCE6, DESTINATION6, 64, type, code, rest,
                                           data + 6, size - 6);
    if (length < 0) {
        check_reason(-length);
        return;
    }
    uint8_t *exact = copy_of(packet, (size_t)length);
    if (exact == NULL)
        return;
    struct ustack_packet_fields fields;
    int reason = ustack_parse_packet(exact, (size_t)length, &fields);
    check_reason(reason);
    if (reason == USTACK_OK) {
        CHECK(fields.transport == USTACK_TRANSPORT_ICMPV6);
        CHECK(fields.icmp6.type == type && fields.icmp6.code == code);
        CHECK(fields.icmp6.identifier == rest >> 16 && fields.icmp6.sequence == (rest & 0xffff));
        CHECK(fields.payload_length == size - 6);
        CHECK(type != 2 || fields.icmp6.mtu == rest);
    } else {
        CHECK(reason == USTACK_REASON_ICMPV6_BAD_QUOTE && type >= 1 && type <= 4);
    }
    free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 11;
    uint8_t *input = copy_of(data + 1, size - 1);
    size_t length = size - 1;
    if (input == NULL)
        return 0;
    switch (mode) {
    case 0: /* the combined parser on the raw bytes */
        parse_whole_packet(input, length);
        break;
    case 1: /* the combined parser with correct checksums */
        fix_checksums(input, length);
        parse_whole_packet(input, length);
        break;
    case 2: { /* the TCP parser alone, checksum fixed for addresses 10.0.0.1 -> 10.0.0.2 */
        struct ustack_tcp_fields tcp;
        if (length >= 18) {
            ustack_write16(input + 16, 0);
            uint32_t sum = ustack_pseudo_header_sum(0x0a000001, 0x0a000002, USTACK_PROTOCOL_TCP, (uint32_t)length);
            ustack_write16(input + 16, ustack_checksum_finish(ustack_checksum_add(sum, input, length)));
        }
        int reason = ustack_parse_tcp(input, length, 0x0a000001, 0x0a000002, &tcp);
        check_reason(reason);
        if (reason == USTACK_OK)
            CHECK(tcp.header_length <= length && tcp.sack_block_count <= 4);
        break;
    }
    case 3: { /* the ICMP parser alone, checksum fixed */
        struct ustack_icmp_fields icmp;
        if (length >= 4) {
            ustack_write16(input + 2, 0);
            ustack_write16(input + 2, ustack_checksum(input, length));
        }
        check_reason(ustack_parse_icmp(input, length, &icmp));
        break;
    }
    case 4: { /* the IPv4 parser alone, and the checksum code at every length */
        struct ustack_ipv4_fields ip;
        check_reason(ustack_parse_ipv4(input, length, &ip));
        uint32_t whole = ustack_checksum_add(0, input, length);
        size_t half = (length / 2) & ~(size_t)1; /* pieces that start at even offsets */
        uint32_t pieces = ustack_checksum_add(ustack_checksum_add(0, input, half), input + half, length - half);
        CHECK(ustack_checksum_finish(whole) == ustack_checksum_finish(pieces));
        break;
    }
    case 5: /* build a TCP packet, then parse it back */
        round_trip(input, length);
        break;
    case 6: /* build an ICMP packet, then parse it back */
        icmp_round_trip(input, length);
        break;
    case 7: { /* the IPv6 parser alone (version nibble forced) */
        struct ustack_ipv6_fields ip;
        if (length >= 1)
            input[0] = (uint8_t)(0x60 | (input[0] & 0x0f));
        int reason = ustack_parse_ipv6(input, length, &ip);
        check_reason(reason);
        if (reason == USTACK_OK)
            CHECK(ip.header_length >= USTACK_IPV6_HEADER && ip.header_length <= 40 + (size_t)ip.payload_length);
        break;
    }
    case 8: { /* the ICMPv6 parser alone, checksum fixed */
        struct ustack_icmp6_fields icmp6;
        if (length >= 4) {
            ustack_write16(input + 2, 0);
            uint32_t sum = ustack_pseudo_header_sum6(SOURCE6, DESTINATION6, USTACK_PROTOCOL_ICMPV6, (uint32_t)length);
            ustack_write16(input + 2, ustack_checksum_finish(ustack_checksum_add(sum, input, length)));
        }
        int reason = ustack_parse_icmp6(input, length, SOURCE6, DESTINATION6, &icmp6);
        check_reason(reason);
        if (reason == USTACK_OK && icmp6.has_quote)
            CHECK(icmp6.quoted_ip.header_length >= USTACK_IPV6_HEADER && icmp6.quoted_ip.header_length <= length - 8);
        break;
    }
    case 9: /* build a TCP packet over IPv6, then parse it back */
        round_trip6(input, length);
        break;
    default: /* build an ICMPv6 packet, then parse it back */
        icmp6_round_trip(input, length);
        break;
    }
    free(input);
    return 0;
}
