/* ustack wire layer: checksums, IPv4 / IPv6 / TCP / ICMPv4 / ICMPv6 parse and build.
 *
 * Rules every function here follows (DESIGN.md rule 4):
 *   - never allocates; all output goes to structs or buffers the caller owns;
 *   - never reads or writes outside the [pointer, pointer + length) it is given;
 *   - a rejected packet returns a named reason from enum ustack_reason (0 means accepted).
 *
 * Multi-byte fields in the structs below are host-order integers; the parsers convert from network
 * order (big-endian) and the builders convert back.
 *
 * The part between the cdef markers is also read by cffi (csrc/build_wire.py), so it uses only
 * plain C declarations: no preprocessor lines, no expressions in array sizes other than literals.
 */
#ifndef USTACK_WIRE_H
#define USTACK_WIRE_H
#include <stddef.h>
#include <stdint.h>

/* --- cdef begin --- */

/* Why a packet was rejected. Python turns each name into a reason string once, at import time:
 * USTACK_REASON_IPV4_BAD_CHECKSUM becomes "ipv4_bad_checksum" (ustack/wire/reasons.py). */
enum ustack_reason {
    USTACK_OK = 0,
    USTACK_REASON_IPV4_TRUNCATED = 1,          /* fewer than 20 bytes */
    USTACK_REASON_IPV4_BAD_VERSION = 2,        /* version field is not 4 */
    USTACK_REASON_IPV4_BAD_HEADER_LENGTH = 3,  /* IHL < 5, or the header runs past the packet */
    USTACK_REASON_IPV4_BAD_TOTAL_LENGTH = 4,   /* total length < header length, or > bytes we have */
    USTACK_REASON_IPV4_BAD_CHECKSUM = 5,
    USTACK_REASON_TCP_TRUNCATED = 6,           /* fewer than 20 bytes of TCP header */
    USTACK_REASON_TCP_BAD_DATA_OFFSET = 7,     /* data offset < 5, or past the end of the segment */
    USTACK_REASON_TCP_BAD_CHECKSUM = 8,
    USTACK_REASON_TCP_BAD_OPTION_LENGTH = 9,   /* option length < 2, past the options, or wrong for its kind */
    USTACK_REASON_ICMP_TRUNCATED = 10,         /* fewer than 8 bytes of ICMP header */
    USTACK_REASON_ICMP_BAD_CHECKSUM = 11,
    USTACK_REASON_ICMP_BAD_QUOTE = 12,         /* error message whose quoted IP header + 8 bytes is unusable */
    USTACK_REASON_BUILD_BUFFER_TOO_SMALL = 13, /* builder: the caller's buffer cannot hold the packet */
    USTACK_REASON_BUILD_PACKET_TOO_LONG = 14,  /* builder: more than 65,535 bytes of IP packet or payload */
    USTACK_REASON_IPV6_TRUNCATED = 15,         /* fewer than 40 bytes */
    USTACK_REASON_IPV6_BAD_VERSION = 16,       /* version field is not 6 (ustack_parse_ipv6 alone) */
    USTACK_REASON_IPV6_BAD_PAYLOAD_LENGTH = 17, /* payload length > bytes we have (jumbograms are not taken) */
    USTACK_REASON_IPV6_EXTENSION_TRUNCATED = 18, /* an extension header runs past the payload */
    USTACK_REASON_IPV6_EXTENSION_CHAIN_TOO_LONG = 19, /* more extension headers than we walk */
    USTACK_REASON_IPV6_MISPLACED_HOP_BY_HOP = 20, /* hop-by-hop options not right after the IPv6 header */
    USTACK_REASON_IPV6_BAD_OPTION_LENGTH = 21, /* an option runs past its options header */
    USTACK_REASON_IPV6_UNKNOWN_OPTION = 22,    /* an unknown option whose type says "discard" */
    USTACK_REASON_IPV6_ROUTING_SEGMENTS_LEFT = 23, /* a routing header asks a host to forward */
    USTACK_REASON_IPV6_BAD_FRAGMENT = 24,      /* length not a multiple of 8 with M set, or past 65,535 */
    USTACK_REASON_ICMPV6_TRUNCATED = 25,       /* fewer than 8 bytes of ICMPv6 header */
    USTACK_REASON_ICMPV6_BAD_CHECKSUM = 26,
    USTACK_REASON_ICMPV6_BAD_QUOTE = 27,       /* error message without a whole quoted IPv6 header */
    USTACK_REASON_COUNT = 28
};

/* Which transport a parsed packet carried (ustack_packet_fields.transport). */
enum ustack_transport {
    USTACK_TRANSPORT_NONE = 0,  /* a fragment, or a protocol other than TCP and ICMP: IP header only */
    USTACK_TRANSPORT_ICMP = 1,
    USTACK_TRANSPORT_TCP = 6,
    USTACK_TRANSPORT_ICMPV6 = 58
};

/* Bits of ustack_tcp_fields.options_present. */
enum ustack_tcp_option_bits {
    USTACK_OPTION_MSS = 1,
    USTACK_OPTION_WINDOW_SCALE = 2,
    USTACK_OPTION_SACK_PERMITTED = 4,
    USTACK_OPTION_TIMESTAMPS = 8
};

/* Option order on the wire for the builder: the order a real stack uses, so captures and
 * conformance scripts compare byte for byte. */
enum ustack_option_layout {
    USTACK_LAYOUT_LINUX = 0,
    USTACK_LAYOUT_FREEBSD = 1
};

/* RFC 791 3.1. Field order matches the Python NamedTuple Ipv4Header (ustack/wire/ipv4.py). */
struct ustack_ipv4_fields {
    uint32_t src;
    uint32_t dst;
    uint8_t protocol;
    uint8_t ttl;
    uint16_t total_length;
    uint16_t identification;
    uint8_t dont_fragment;
    uint8_t more_fragments;
    uint16_t fragment_offset;  /* in bytes: the wire field times 8 */
    uint8_t header_length;     /* in bytes: IHL times 4 */
    uint8_t tos;
};

/* RFC 9293 3.1. The first fields match the NamedTuple TcpSegment (flags, then header_length that
 * Python skips, then window). Options (RFC 9293 3.2, RFC 7323, RFC 2018) follow. */
struct ustack_tcp_fields {
    uint16_t src_port;
    uint16_t dst_port;
    uint32_t seq;
    uint32_t ack;
    uint8_t flags;             /* all eight flag bits, as received */
    uint8_t header_length;     /* data offset times 4 */
    uint16_t window;           /* raw, unscaled */
    uint16_t urgent_pointer;
    uint8_t options_present;   /* USTACK_OPTION_* bits */
    uint8_t window_scale;      /* shift count as received (RFC 7323 2.3: the receiver clamps to 14) */
    uint16_t mss;
    uint8_t sack_block_count;  /* 0..4 */
    uint8_t reserved;
    uint32_t ts_val;
    uint32_t ts_ecr;
    uint32_t sack_blocks[8];   /* left, right, left, right, ... */
};

/* RFC 792. Echo fields, the next-hop MTU (RFC 1191) and, for error messages, the quoted header. */
struct ustack_icmp_fields {
    uint8_t type;
    uint8_t code;
    uint16_t identifier;       /* bytes 4-5: the identifier of echo request / reply */
    uint16_t sequence;         /* bytes 6-7: the sequence number of echo request / reply */
    uint16_t next_hop_mtu;     /* destination unreachable, code 4 (fragmentation needed) */
    uint8_t has_quote;         /* 1 for error messages: quoted_ip is filled in */
    uint8_t quote_is_tcp;      /* 1 when the quoted datagram is TCP: the quoted_* ports/seq are filled */
    uint16_t reserved;
    struct ustack_ipv4_fields quoted_ip;
    uint16_t quoted_src_port;
    uint16_t quoted_dst_port;
    uint32_t quoted_seq;
};

/* RFC 8200 3 and 4. Field order matches the Python NamedTuple Ipv6Header (ustack/wire/ipv6.py).
 * The extension header chain is walked by the parser: `protocol` is the Next Header that ends it
 * (TCP, ICMPv6, 59 "no next header", or any protocol we do not carry) and `header_length` is where
 * that protocol's header starts (40 plus the extension headers). In a fragment (M set or offset not
 * 0) the walk stops at the fragment header: `protocol` is its Next Header and the fragment's data
 * starts at `header_length`. */
struct ustack_ipv6_fields {
    uint8_t src[16];
    uint8_t dst[16];
    uint8_t protocol;
    uint8_t hop_limit;
    uint16_t payload_length;   /* as on the wire: the bytes after the 40-byte header */
    uint32_t flow_label;       /* 20 bits (RFC 6437) */
    uint8_t traffic_class;
    uint8_t has_fragment_header; /* 1 also for an atomic fragment (offset 0, M clear: RFC 6946) */
    uint8_t more_fragments;
    uint8_t reserved;
    uint16_t fragment_offset;  /* in bytes: the wire field times 8 */
    uint16_t header_length;
    uint32_t identification;   /* of the fragment header */
};

/* RFC 4443. Echo fields, the MTU of packet too big, the pointer of parameter problem and, for
 * error messages, the quoted IPv6 header and the first 8 bytes of a quoted TCP header. */
struct ustack_icmp6_fields {
    uint8_t type;
    uint8_t code;
    uint16_t identifier;       /* bytes 4-5, as for ICMPv4 */
    uint16_t sequence;         /* bytes 6-7 */
    uint8_t has_quote;
    uint8_t quote_is_tcp;
    uint32_t mtu;              /* packet too big (type 2), 0 otherwise */
    uint32_t pointer;          /* parameter problem (type 4), 0 otherwise */
    struct ustack_ipv6_fields quoted_ip;
    uint16_t quoted_src_port;
    uint16_t quoted_dst_port;
    uint32_t quoted_seq;
};

/* Everything ustack_parse_packet learns about one IPv4 or IPv6 packet. `version` says which of
 * `ip` / `ip6` is filled in, and `transport` which of `tcp` / `icmp` / `icmp6`. */
struct ustack_packet_fields {
    struct ustack_ipv4_fields ip;
    uint8_t transport;         /* enum ustack_transport */
    uint8_t version;           /* 4 or 6 */
    uint8_t reserved[2];
    uint32_t payload_offset;   /* from the start of the packet: TCP data, ICMP data, or the IP payload */
    uint32_t payload_length;
    struct ustack_tcp_fields tcp;
    struct ustack_icmp_fields icmp;
    struct ustack_ipv6_fields ip6;
    struct ustack_icmp6_fields icmp6;
};

/* What the TCP builder writes: one whole IPv4 packet carrying one segment. */
struct ustack_tcp_spec {
    uint32_t src;
    uint32_t dst;
    uint8_t ttl;
    uint8_t dont_fragment;
    uint16_t identification;
    uint16_t src_port;
    uint16_t dst_port;
    uint32_t seq;
    uint32_t ack;
    uint8_t flags;
    uint8_t options_present;   /* USTACK_OPTION_* bits */
    uint16_t window;
    uint16_t urgent_pointer;
    uint16_t mss;
    uint8_t window_scale;
    uint8_t sack_block_count;  /* blocks that do not fit in 40 bytes of options are left out */
    uint8_t layout;            /* enum ustack_option_layout */
    uint8_t tos;               /* IPv4 TOS byte: DSCP and the ECN field (RFC 3168 5); not for IPv6 */
    uint32_t ts_val;
    uint32_t ts_ecr;
    uint32_t sack_blocks[8];
};

/* Internet checksum (checksum.c). A "partial sum" is the 16-bit one's complement sum of the data
 * read as big-endian 16-bit words, not yet complemented. Chain pieces that start at even offsets. */
uint32_t ustack_checksum_add(uint32_t partial_sum, const uint8_t *data, size_t length);
uint16_t ustack_checksum_finish(uint32_t partial_sum);
uint16_t ustack_checksum(const uint8_t *data, size_t length);
uint16_t ustack_checksum_update(uint16_t checksum, uint16_t old_word, uint16_t new_word);
uint32_t ustack_pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t protocol, uint32_t length);
uint32_t ustack_pseudo_header_sum6(const uint8_t *src, const uint8_t *dst, uint8_t protocol, uint32_t length);

/* Which loop sums buffers of 256 bytes or more. The widest the processor has is used; tests call
 * ustack_checksum_select to run each in turn (-1 means the widest again). It returns the path now
 * in use, which is the widest available when the one asked for is not. */
enum ustack_checksum_path {
    USTACK_CHECKSUM_PORTABLE = 0,
    USTACK_CHECKSUM_AVX2 = 1,
    USTACK_CHECKSUM_AVX512 = 2
};
int ustack_checksum_select(int path);

/* IPv4 (ipv4.c). Parse validates the header; the payload is [header_length, total_length). */
int ustack_parse_ipv4(const uint8_t *packet, size_t length, struct ustack_ipv4_fields *out);
int ustack_build_ipv4_header(uint8_t *out, size_t capacity, const struct ustack_ipv4_fields *header);

/* TCP (tcp.c). `segment` is the TCP header + data (the IP payload); src/dst feed the pseudo-header. */
int ustack_parse_tcp(const uint8_t *segment, size_t length, uint32_t src, uint32_t dst,
                     struct ustack_tcp_fields *out);
int ustack_tcp_options_length(const struct ustack_tcp_spec *spec);

/* ICMPv4 (icmp.c). `message` is the ICMP header + data (the IP payload). */
int ustack_parse_icmp(const uint8_t *message, size_t length, struct ustack_icmp_fields *out);

/* IPv6 (ipv6.c). Parse validates the fixed header and walks the extension header chain. */
int ustack_parse_ipv6(const uint8_t *packet, size_t length, struct ustack_ipv6_fields *out);

/* ICMPv6 (icmpv6.c). `message` is the ICMPv6 header + data; src/dst (16 bytes each) feed the
 * pseudo-header of the checksum (RFC 4443 2.3). */
int ustack_parse_icmp6(const uint8_t *message, size_t length, const uint8_t *src, const uint8_t *dst,
                       struct ustack_icmp6_fields *out);

/* Whole packets (packet.c): one call per packet in each direction. ustack_parse_packet takes both
 * IPv4 and IPv6, by the version nibble.
 * Parse returns a reason; the builders return the packet length (> 0) or minus a reason. */
int ustack_parse_packet(const uint8_t *packet, size_t length, struct ustack_packet_fields *out);
/* ustack_parse_packet for a packet whose TCP checksum is already known to be right: the link
 * completed it itself or the kernel verified it (ustack/link/vnet.py decides which packets). Every
 * other check is made as by ustack_parse_packet, the IPv4 header checksum and ICMP's included. */
int ustack_parse_packet_tcp_checksum_known(const uint8_t *packet, size_t length, struct ustack_packet_fields *out);
int ustack_build_tcp_packet(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                            const uint8_t *payload, size_t payload_length);
/* As ustack_build_tcp_packet, but only the headers are written at `out`: the payload stays where
 * it is, for the caller to send after them. The lengths and the checksum cover it; the return
 * value is still the whole packet's length (the headers' is that minus payload_length). */
int ustack_build_tcp_headers(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                             const uint8_t *payload, size_t payload_length);
/* As ustack_build_tcp_headers, with the TCP checksum left partial as a TSO device takes it
 * (NEEDS_CSUM at the TCP checksum field: the pseudo-header sum with the TCP length, folded, not
 * complemented), so the payload is not read at all: for a large segment the kernel cuts and
 * completes (the TUN link with offloads; ustack/wire/codec.py build_tcp_packet). */
int ustack_build_tcp_headers_partial(uint8_t *out, size_t capacity, const struct ustack_tcp_spec *spec,
                                     size_t payload_length);
int ustack_build_icmp_packet(uint8_t *out, size_t capacity, uint32_t src, uint32_t dst, uint8_t ttl,
                             uint16_t identification, uint8_t type, uint8_t code, uint32_t rest_of_header,
                             const uint8_t *data, size_t data_length);
/* IPv6 (ipv6.c): the spec's src, dst, ttl, dont_fragment and identification are not used. */
int ustack_build_tcp6_packet(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                             uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                             const struct ustack_tcp_spec *spec, const uint8_t *payload, size_t payload_length);
int ustack_build_tcp6_headers(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                              uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                              const struct ustack_tcp_spec *spec, const uint8_t *payload, size_t payload_length);
int ustack_build_tcp6_headers_partial(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                                      uint8_t hop_limit, uint32_t flow_label, uint8_t traffic_class,
                                      const struct ustack_tcp_spec *spec, size_t payload_length);
int ustack_build_icmp6_packet(uint8_t *out, size_t capacity, const uint8_t *src, const uint8_t *dst,
                              uint8_t hop_limit, uint8_t type, uint8_t code, uint32_t rest_of_header,
                              const uint8_t *data, size_t data_length);
/* The 40-byte fixed header alone (`header->protocol` is its Next Header, payload_length as given). */
int ustack_build_ipv6_header(uint8_t *out, size_t capacity, const struct ustack_ipv6_fields *header);

/* Software segmentation offload (segment.c): a TCP segment larger than the MTU cut into pieces,
 * and the packets of one read batch with runs of in-order segments joined (GSO and GRO). */
struct ustack_joined_packet {
    uint32_t offset;    /* where it sits in the batch buffer */
    uint32_t length;
    uint16_t segments;  /* packets it holds: 1 as read, 0 to drop (not IP, or longer than its slot) */
    uint16_t acks;      /* pure ACKs it stands for: 1, or more for the last of a run whose others
                         * were absorbed (ustack_join_tcp_segments) */
};
int ustack_cut_tcp_segment(const uint8_t *packet, size_t length, const uint8_t *data, size_t data_length,
                           size_t largest, uint8_t *out, size_t capacity, uint32_t *piece_lengths, size_t max_pieces);
int ustack_join_tcp_segments(uint8_t *buffer, size_t slot_size, const uint32_t *lengths, size_t count,
                             struct ustack_joined_packet *out);
int ustack_thin_pure_acks(uint8_t *const *packets, const uint32_t *lengths, size_t count, uint16_t *acks);

/* --- cdef end --- */

/* Internal helpers shared by the .c files (not exposed to Python). */
#define USTACK_IPV4_MIN_HEADER 20
#define USTACK_IPV4_LARGEST_PACKET 65535 /* RFC 791 3.1: what the 16-bit Total Length can say */
/* The largest BIG TCP packet we build, in either family (a TCP super-segment that the kernel
 * cuts: IPv4 with Total Length 0 since Linux 6.3, an IPv6 jumbogram since 5.19): 256 KiB, what
 * pcap's usual snapshot length (and Wireshark's) still takes whole. */
#define USTACK_LARGEST_BIG_PACKET 262144
#define USTACK_TCP_MIN_HEADER 20
#define USTACK_TCP_MAX_OPTIONS 40
#define USTACK_ICMP_HEADER 8
#define USTACK_PROTOCOL_ICMP 1
#define USTACK_PROTOCOL_TCP 6
#define USTACK_IPV6_HEADER 40
#define USTACK_IPV6_JUMBO_HEADER 8     /* a hop-by-hop header holding only the Jumbo Payload option */
#define USTACK_IPV6_OPTION_JUMBO 0xC2  /* RFC 2675 2 */
#define USTACK_PROTOCOL_ICMPV6 58

static inline uint16_t ustack_read16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline uint32_t ustack_read32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void ustack_write16(uint8_t *p, uint16_t value)
{
    p[0] = (uint8_t)(value >> 8);
    p[1] = (uint8_t)value;
}

static inline void ustack_write32(uint8_t *p, uint32_t value)
{
    p[0] = (uint8_t)(value >> 24);
    p[1] = (uint8_t)(value >> 16);
    p[2] = (uint8_t)(value >> 8);
    p[3] = (uint8_t)value;
}

/* Internal: the length of the IPv4 packet in `length` bytes as its header says it (ipv4.c). */
size_t ustack_ipv4_total_length(const uint8_t *packet, size_t length);
/* Internal: an IPv6 jumbogram's length past the fixed header (its Jumbo Payload Length), or 0 if
 * the packet in `length` bytes is no jumbogram of the one layout we take (ipv6.c). */
size_t ustack_ipv6_jumbo_length(const uint8_t *packet, size_t length);

/* Internal: fills in the TCP part of a packet after the IP header is written (tcp.c).
 * `address_sum` is the pseudo-header's partial sum without the length, for either family;
 * `payload_in_place` one of these: */
#define USTACK_PAYLOAD_COPIED 0                     /* after the header, checksum complete */
#define USTACK_PAYLOAD_IN_PLACE 1                   /* left where it is, checksum complete */
#define USTACK_PAYLOAD_IN_PLACE_CHECKSUM_PARTIAL 2  /* left where it is (not read), checksum partial */
int ustack_write_tcp(uint8_t *segment, size_t capacity, const struct ustack_tcp_spec *spec, uint32_t address_sum,
                     const uint8_t *payload, size_t payload_length, int payload_in_place);
/* Internal: ustack_parse_tcp for either family, with the pseudo-header's sum without the length. */
int ustack_parse_tcp_summed(const uint8_t *segment, size_t length, uint32_t address_sum, struct ustack_tcp_fields *out);
/* Internal: the same without the checksum, for a segment whose checksum is known to be right. */
int ustack_parse_tcp_checksum_known(const uint8_t *segment, size_t length, struct ustack_tcp_fields *out);
/* Internal: the IPv6 parts of ustack_parse_packet (the TCP checksum known to be right or not) and
 * its quoted-packet walk (ipv6.c). */
int ustack_parse_packet6(const uint8_t *packet, size_t length, struct ustack_packet_fields *out, int tcp_checksum_known);
int ustack_walk_ipv6_chain(const uint8_t *packet, size_t available, struct ustack_ipv6_fields *out);
void ustack_read_ipv6_fixed(const uint8_t *packet, struct ustack_ipv6_fields *out);

#endif
