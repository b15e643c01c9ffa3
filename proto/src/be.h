/* Big-endian loads and stores, as msgpack and PostgreSQL's binary COPY
 * write integers: private to proto (wire.c, copy.c). */
#ifndef EVPIPE_PROTO_BE_H
#define EVPIPE_PROTO_BE_H

#include <stdint.h>
#include <string.h>

static inline unsigned char *ev_be16_put(unsigned char *p, uint16_t v)
{
    v = __builtin_bswap16(v);
    memcpy(p, &v, 2);
    return p + 2;
}

static inline unsigned char *ev_be32_put(unsigned char *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

static inline unsigned char *ev_be64_put(unsigned char *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
    return p + 8;
}

/* The n-byte (1, 2, 4 or 8) unsigned integer at p. */
static inline uint64_t ev_be_get(const unsigned char *p, int n)
{
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (n) {
    case 1:
        return p[0];
    case 2:
        memcpy(&u16, p, 2);
        return __builtin_bswap16(u16);
    case 4:
        memcpy(&u32, p, 4);
        return __builtin_bswap32(u32);
    default:
        memcpy(&u64, p, 8);
        return __builtin_bswap64(u64);
    }
}

#endif
