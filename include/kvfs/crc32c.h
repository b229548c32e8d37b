/* CRC32C (Castagnoli), as used by every log record, snapshot and peer frame. */
#ifndef KVFS_CRC32C_H
#define KVFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with len bytes of buf. crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* KVFS_CRC32C_H */
