"""Types of the C extension ustack.wire._wire, which cffi builds from csrc/*.c (csrc/build_wire.py).

cffi gives the module two names: `ffi`, which knows the C types, and `lib`, which holds the
functions and enum constants declared between the cdef markers of csrc/wire.h. The header is the
owner of those declarations; this stub repeats them for type checkers and editors, as aioquic
ships _buffer.pyi beside its C buffer. tests/wire/test_wire_stub.py checks it against the built
module both ways: every name here exists there with the same parameters, and the reverse.

Parameter types: a C integer is an `int`; `const uint8_t *` input is `bytes` (cffi hands C the
bytes' own memory) or C memory; a struct pointer or an output buffer is C memory from `ffi.new`.
"""

from typing import Any, final, overload

class CData:
    """C memory cffi made (`ffi.new("struct ustack_tcp_spec *")`): its fields are attributes."""

    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def __getitem__(self, index: int) -> Any: ...
    def __setitem__(self, index: int, value: Any) -> None: ...
    def __add__(self, offset: int) -> "CData": ...  # pointer arithmetic: from_buffer(b) + start

class CType:
    """What `ffi.typeof` returns: a C type (kind 'struct', 'pointer', 'function', ...)."""

    kind: str
    cname: str
    fields: list[tuple[str, Any]]
    args: tuple[CType, ...]
    result: CType

class CBuffer:
    """`ffi.buffer(cdata)`: the raw bytes of C memory, readable and writable in place."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: slice) -> bytes: ...
    def __setitem__(self, index: slice, value: bytes) -> None: ...

InBytes = bytes | CData  # const uint8_t *: what C only reads

@final
class FFI:
    NULL: CData  # a null pointer (an optional const uint8_t * left out)
    def new(self, cdecl: str, init: Any = ..., /) -> CData: ...
    def buffer(self, cdata: CData, size: int = ..., /) -> CBuffer: ...
    @overload
    def from_buffer(self, python_buffer: bytes | bytearray | memoryview, /, require_writable: bool = ...) -> CData: ...
    @overload
    def from_buffer(self, cdecl: str, python_buffer: bytes | bytearray | memoryview, /,
                    require_writable: bool = ...) -> CData: ...
    def offsetof(self, cdecl: str, *fields_or_indexes: str | int) -> int: ...
    def sizeof(self, cdecl: str | CData, /) -> int: ...
    def typeof(self, cdecl: str | CData | Any, /) -> CType: ...

@final
class Lib:
    # enum ustack_reason: why a packet was rejected (ustack/wire/reasons.py names them)
    USTACK_OK: int
    USTACK_REASON_IPV4_TRUNCATED: int
    USTACK_REASON_IPV4_BAD_VERSION: int
    USTACK_REASON_IPV4_BAD_HEADER_LENGTH: int
    USTACK_REASON_IPV4_BAD_TOTAL_LENGTH: int
    USTACK_REASON_IPV4_BAD_CHECKSUM: int
    USTACK_REASON_TCP_TRUNCATED: int
    USTACK_REASON_TCP_BAD_DATA_OFFSET: int
    USTACK_REASON_TCP_BAD_CHECKSUM: int
    USTACK_REASON_TCP_BAD_OPTION_LENGTH: int
    USTACK_REASON_ICMP_TRUNCATED: int
    USTACK_REASON_ICMP_BAD_CHECKSUM: int
    USTACK_REASON_ICMP_BAD_QUOTE: int
    USTACK_REASON_BUILD_BUFFER_TOO_SMALL: int
    USTACK_REASON_BUILD_PACKET_TOO_LONG: int
    USTACK_REASON_IPV6_TRUNCATED: int
    USTACK_REASON_IPV6_BAD_VERSION: int
    USTACK_REASON_IPV6_BAD_PAYLOAD_LENGTH: int
    USTACK_REASON_IPV6_EXTENSION_TRUNCATED: int
    USTACK_REASON_IPV6_EXTENSION_CHAIN_TOO_LONG: int
    USTACK_REASON_IPV6_MISPLACED_HOP_BY_HOP: int
    USTACK_REASON_IPV6_BAD_OPTION_LENGTH: int
    USTACK_REASON_IPV6_UNKNOWN_OPTION: int
    USTACK_REASON_IPV6_ROUTING_SEGMENTS_LEFT: int
    USTACK_REASON_IPV6_BAD_FRAGMENT: int
    USTACK_REASON_ICMPV6_TRUNCATED: int
    USTACK_REASON_ICMPV6_BAD_CHECKSUM: int
    USTACK_REASON_ICMPV6_BAD_QUOTE: int
    USTACK_REASON_COUNT: int
    # enum ustack_transport
    USTACK_TRANSPORT_NONE: int
    USTACK_TRANSPORT_ICMP: int
    USTACK_TRANSPORT_TCP: int
    USTACK_TRANSPORT_ICMPV6: int
    # enum ustack_tcp_option_bits
    USTACK_OPTION_MSS: int
    USTACK_OPTION_WINDOW_SCALE: int
    USTACK_OPTION_SACK_PERMITTED: int
    USTACK_OPTION_TIMESTAMPS: int
    # enum ustack_option_layout
    USTACK_LAYOUT_LINUX: int
    USTACK_LAYOUT_FREEBSD: int
    # enum ustack_checksum_path
    USTACK_CHECKSUM_PORTABLE: int
    USTACK_CHECKSUM_AVX2: int
    USTACK_CHECKSUM_AVX512: int

    # checksum.c
    @staticmethod
    def ustack_checksum_add(partial_sum: int, data: InBytes, length: int, /) -> int: ...
    @staticmethod
    def ustack_checksum_finish(partial_sum: int, /) -> int: ...
    @staticmethod
    def ustack_checksum(data: InBytes, length: int, /) -> int: ...
    @staticmethod
    def ustack_checksum_update(checksum: int, old_word: int, new_word: int, /) -> int: ...
    @staticmethod
    def ustack_pseudo_header_sum(src: int, dst: int, protocol: int, length: int, /) -> int: ...
    @staticmethod
    def ustack_checksum_select(path: int, /) -> int: ...
    @staticmethod
    def ustack_pseudo_header_sum6(src: InBytes, dst: InBytes, protocol: int, length: int, /) -> int: ...
    # ipv6.c
    @staticmethod
    def ustack_parse_ipv6(packet: InBytes, length: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_build_ipv6_header(out: CData, capacity: int, header: CData, /) -> int: ...
    @staticmethod
    def ustack_build_tcp6_packet(
        out: CData,
        capacity: int,
        src: InBytes,
        dst: InBytes,
        hop_limit: int,
        flow_label: int,
        traffic_class: int,
        spec: CData,
        payload: InBytes,
        payload_length: int,
        /,
    ) -> int: ...
    @staticmethod
    def ustack_build_tcp6_headers(
        out: CData,
        capacity: int,
        src: InBytes,
        dst: InBytes,
        hop_limit: int,
        flow_label: int,
        traffic_class: int,
        spec: CData,
        payload: InBytes,
        payload_length: int,
        /,
    ) -> int: ...
    @staticmethod
    def ustack_build_tcp6_headers_partial(
        out: CData,
        capacity: int,
        src: InBytes,
        dst: InBytes,
        hop_limit: int,
        flow_label: int,
        traffic_class: int,
        spec: CData,
        payload_length: int,
        /,
    ) -> int: ...
    # icmpv6.c
    @staticmethod
    def ustack_parse_icmp6(message: InBytes, length: int, src: InBytes, dst: InBytes, out: CData, /) -> int: ...
    @staticmethod
    def ustack_build_icmp6_packet(
        out: CData,
        capacity: int,
        src: InBytes,
        dst: InBytes,
        hop_limit: int,
        type: int,
        code: int,
        rest_of_header: int,
        data: InBytes,
        data_length: int,
        /,
    ) -> int: ...
    # ipv4.c
    @staticmethod
    def ustack_parse_ipv4(packet: InBytes, length: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_build_ipv4_header(out: CData, capacity: int, header: CData, /) -> int: ...
    # tcp.c
    @staticmethod
    def ustack_parse_tcp(segment: InBytes, length: int, src: int, dst: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_tcp_options_length(spec: CData, /) -> int: ...
    # icmp.c
    @staticmethod
    def ustack_parse_icmp(message: InBytes, length: int, out: CData, /) -> int: ...
    # packet.c: one call per packet in each direction
    @staticmethod
    def ustack_parse_packet(packet: InBytes, length: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_parse_packet_tcp_checksum_known(packet: InBytes, length: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_build_tcp_packet(
        out: CData, capacity: int, spec: CData, payload: InBytes, payload_length: int, /
    ) -> int: ...
    @staticmethod
    def ustack_build_tcp_headers(
        out: CData, capacity: int, spec: CData, payload: InBytes, payload_length: int, /
    ) -> int: ...
    @staticmethod
    def ustack_build_tcp_headers_partial(out: CData, capacity: int, spec: CData, payload_length: int, /) -> int: ...
    @staticmethod
    def ustack_build_icmp_packet(
        out: CData,
        capacity: int,
        src: int,
        dst: int,
        ttl: int,
        identification: int,
        type: int,
        code: int,
        rest_of_header: int,
        data: InBytes,
        data_length: int,
        /,
    ) -> int: ...
    # segment.c: software GSO (the cut) and GRO (the join)
    @staticmethod
    def ustack_cut_tcp_segment(
        packet: InBytes, length: int, data: InBytes, data_length: int, largest: int, out: CData, capacity: int,
        piece_lengths: CData, max_pieces: int, /
    ) -> int: ...
    @staticmethod
    def ustack_join_tcp_segments(buffer: CData, slot_size: int, lengths: CData, count: int, out: CData, /) -> int: ...
    @staticmethod
    def ustack_thin_pure_acks(packets: CData, lengths: CData, count: int, acks: CData, /) -> int: ...

ffi: FFI
lib: Lib
