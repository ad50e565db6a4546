#ifndef USTACK_WIRE_H
#define USTACK_WIRE_H
#include <stddef.h>
#include <stdint.h>

uint32_t ustack_checksum_add(uint32_t sum, const uint8_t *data, size_t length);
uint16_t ustack_checksum_fold(uint32_t sum);

#endif
