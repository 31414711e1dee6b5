/* bytes: fixed-width integers in a byte buffer, in the byte order a format says: QEMU's multifd
 * packets are big-endian, the page index and the zstd seek table little-endian. Any thread. */
#ifndef SAVEFS_COPIER_BYTES_H
#define SAVEFS_COPIER_BYTES_H

#include <stdint.h>

static inline uint32_t cp_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t cp_get_be64(const uint8_t *p)
{
    return (uint64_t)cp_get_be32(p) << 32 | cp_get_be32(p + 4);
}

static inline uint32_t cp_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t cp_get_le64(const uint8_t *p)
{
    return (uint64_t)cp_get_le32(p) | (uint64_t)cp_get_le32(p + 4) << 32;
}

static inline void cp_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void cp_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#endif
