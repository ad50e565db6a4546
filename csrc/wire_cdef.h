/* The declarations cffi exposes to Python (a subset of wire.h, in cdef syntax). */
uint32_t ustack_checksum_add(uint32_t sum, const uint8_t *data, size_t length);
uint16_t ustack_checksum_fold(uint32_t sum);
