/* crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of iSCSI and ext4, and of every journal record.
 *
 * crc32c(0, buf, len) is the checksum of buf. Passing an earlier result as
 * `crc` continues it: crc32c(crc32c(0, a, n), b, m) is the checksum of a
 * followed by b. crc32c() uses the SSE4.2 instruction when the CPU has one
 * and the table-driven code otherwise; both give the same results, and the
 * two are exported so that tests can hold one against the other. */
#ifndef MQ_CRC32C_H
#define MQ_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* Portable slicing-by-8: eight table lookups per eight bytes. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* True when crc32c_hw() may be called on this CPU. */
bool crc32c_hw_available(void);
/* The SSE4.2 crc32 instruction; only when crc32c_hw_available(). */
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
