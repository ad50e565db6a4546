/* Internet checksum (RFC 1071). Placeholder, to be replaced by the wire layer work. */
#include "wire.h"

uint32_t ustack_checksum_add(uint32_t sum, const uint8_t *data, size_t length)
{
    uint64_t acc = sum;
    size_t i = 0;
    for (; i + 1 < length; i += 2)
        acc += (uint32_t)((data[i] << 8) | data[i + 1]);
    if (i < length)
        acc += (uint32_t)(data[i] << 8);
    while (acc >> 32)
        acc = (acc & 0xffffffffu) + (acc >> 32);
    return (uint32_t)acc;
}

uint16_t ustack_checksum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}
