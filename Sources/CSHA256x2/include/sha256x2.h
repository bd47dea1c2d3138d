/*
 * sha256x2.h — SHA-256 for Alexandria, with an x86 SHA-NI kernel that can
 * compress two independent message streams interleaved on one core.
 *
 * Why two streams: on SHA-NI CPUs (e.g. AMD Zen 3) `sha256rnds2` has a
 * latency of ~4 cycles but a reciprocal throughput of ~2, so a single
 * SHA-256 chain leaves half of the unit idle. Running two independent chains
 * in the same loop fills that gap. Alexandria hashes every file twice (the
 * whole-file digest and the per-chunk digests), so those two streams pair up.
 *
 * State layout: every `uint32_t state[8]` in this API holds the SHA-256
 * working hash in FIPS 180-4 order, state[0..7] = H0..H7, as native uint32
 * values (not bytes). Digests (`out[32]`) are the standard big-endian bytes.
 *
 * Kernel selection is automatic at run time: SHA-NI when the CPU has it
 * (and this is an x86-64 build), otherwise a portable C implementation.
 * All functions are thread-safe; contexts are not shared between threads.
 */
#ifndef ALX_SHA256X2_H
#define ALX_SHA256X2_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 if this CPU has SHA-NI, SSSE3 and SSE4.1 (checked once via CPUID and
/// cached); always 0 on non-x86-64 builds. Reports the hardware only: it is
/// not affected by alx_sha256_force_portable().
int alx_sha256_ni_available(void);

/// Testing/benchmarking hook: a nonzero argument makes every function below
/// use the portable C kernel even when SHA-NI is available; 0 restores the
/// automatic choice. Process-wide.
void alx_sha256_force_portable(int force);

/// Compress `nblocks` 64-byte blocks of `data` into `state[8]` (H0..H7).
/// No padding is applied: this is the raw compression function.
void alx_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks);

/// Compress `nblocks` blocks of `dataA` into `stateA` AND `nblocks` blocks of
/// `dataB` into `stateB`, with the two computations interleaved. The results
/// are identical to two alx_sha256_blocks() calls. `stateA` and `stateB`
/// must not overlap; the data pointers may point anywhere (even the same bytes).
void alx_sha256_blocks_x2(uint32_t stateA[8], const uint8_t *dataA,
                          uint32_t stateB[8], const uint8_t *dataB,
                          size_t nblocks);

/// Incremental SHA-256. `state` is H0..H7, `length` the total bytes absorbed
/// so far, `buffer` holds the `buffered` (< 64) bytes not yet compressed.
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t buffer[64];
    uint32_t buffered;
} alx_sha256_ctx;

void alx_sha256_init(alx_sha256_ctx *c);
void alx_sha256_update(alx_sha256_ctx *c, const uint8_t *data, size_t len);

/// Updates two distinct contexts with two (possibly different-length) inputs,
/// using the x2 kernel for as many whole blocks as both can take at once, and
/// the single kernel for the rest. Equivalent to
/// alx_sha256_update(a, dataA, lenA); alx_sha256_update(b, dataB, lenB).
void alx_sha256_update_x2(alx_sha256_ctx *a, const uint8_t *dataA, size_t lenA,
                          alx_sha256_ctx *b, const uint8_t *dataB, size_t lenB);

/// Writes the 32-byte digest. The context must be re-initialised before reuse.
void alx_sha256_final(alx_sha256_ctx *c, uint8_t out[32]);

/// One-shot digest.
void alx_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif

#endif /* ALX_SHA256X2_H */
