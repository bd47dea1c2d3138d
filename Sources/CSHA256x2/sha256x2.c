/*
 * sha256x2.c — SHA-256 (FIPS 180-4) with an x86 SHA-NI kernel that can run
 * two independent message streams interleaved on one core, a portable C
 * fallback, and a small incremental API on top. See include/sha256x2.h.
 *
 * State layout everywhere: uint32_t state[8] = H0..H7 of FIPS 180-4, as
 * native integers. The SHA-NI code converts to and from the ABEF/CDGH
 * register layout that `sha256rnds2` wants only at entry and exit.
 *
 * No special compiler flags are needed: the SHA-NI functions carry
 * __attribute__((target(...))) and are only called after a CPUID check.
 */
#include "sha256x2.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define ALX_HAVE_X86 1
#else
#define ALX_HAVE_X86 0
#endif

/* Round constants K0..K63 (FIPS 180-4 §4.2.2). 16-byte aligned so the
 * SHA-NI kernels can fetch four at a time with an aligned load. */
static const uint32_t K256[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Initial hash value H0..H7 (FIPS 180-4 §5.3.3). */
static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ------------------------------------------------------------------------ */
/* Portable C kernel                                                        */
/* ------------------------------------------------------------------------ */

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROTR32(x, 2) ^ ROTR32(x, 13) ^ ROTR32(x, 22))
#define BSIG1(x) (ROTR32(x, 6) ^ ROTR32(x, 11) ^ ROTR32(x, 25))
#define SSIG0(x) (ROTR32(x, 7) ^ ROTR32(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR32(x, 17) ^ ROTR32(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

/* One round; the caller rotates the variable names instead of moving values. */
#define PRND(a, b, c, d, e, f, g, h, i)                                      \
    do {                                                                     \
        uint32_t t1_ = h + BSIG1(e) + CH(e, f, g) + K256[i] + W[i];          \
        uint32_t t2_ = BSIG0(a) + MAJ(a, b, c);                              \
        d += t1_;                                                            \
        h = t1_ + t2_;                                                       \
    } while (0)

static void sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    while (nblocks--) {
        uint32_t W[64];
        /* Message schedule (§6.2.2 step 1): big-endian words, then expansion. */
        for (int i = 0; i < 16; i++)
            W[i] = load_be32(data + 4 * i);
        for (int i = 16; i < 64; i++)
            W[i] = SSIG1(W[i - 2]) + W[i - 7] + SSIG0(W[i - 15]) + W[i - 16];

        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        /* 64 rounds, 8 per iteration so the name rotation wraps around. */
        for (int i = 0; i < 64; i += 8) {
            PRND(a, b, c, d, e, f, g, h, i + 0);
            PRND(h, a, b, c, d, e, f, g, i + 1);
            PRND(g, h, a, b, c, d, e, f, i + 2);
            PRND(f, g, h, a, b, c, d, e, i + 3);
            PRND(e, f, g, h, a, b, c, d, i + 4);
            PRND(d, e, f, g, h, a, b, c, i + 5);
            PRND(c, d, e, f, g, h, a, b, i + 6);
            PRND(b, c, d, e, f, g, h, a, i + 7);
        }
        /* Feed-forward into H0..H7. */
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
        data += 64;
    }
}

/* ------------------------------------------------------------------------ */
/* CPU feature detection and kernel selection                               */
/* ------------------------------------------------------------------------ */

static int g_force_portable = 0; /* set by alx_sha256_force_portable() */
#if ALX_HAVE_X86
static int g_ni_cached = -1;     /* -1: not probed yet; else 0/1 */
#endif

int alx_sha256_ni_available(void) {
#if ALX_HAVE_X86
    int v = __atomic_load_n(&g_ni_cached, __ATOMIC_RELAXED);
    if (v < 0) {
        /* The probe is idempotent, so a race between threads is harmless. */
        unsigned eax, ebx, ecx, edx;
        v = 0;
        if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
            int ssse3 = (ecx >> 9) & 1;  /* CPUID.1:ECX.SSSE3[bit 9]    */
            int sse41 = (ecx >> 19) & 1; /* CPUID.1:ECX.SSE4_1[bit 19]  */
            if (ssse3 && sse41 && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
                v = (ebx >> 29) & 1;     /* CPUID.(7,0):EBX.SHA[bit 29] */
        }
        __atomic_store_n(&g_ni_cached, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

void alx_sha256_force_portable(int force) {
    __atomic_store_n(&g_force_portable, force ? 1 : 0, __ATOMIC_RELAXED);
}

#if ALX_HAVE_X86
/* The kernel choice made on every call: SHA-NI unless absent or overridden. */
static inline int use_shani(void) {
    return !__atomic_load_n(&g_force_portable, __ATOMIC_RELAXED) && alx_sha256_ni_available();
}
#endif

/* ------------------------------------------------------------------------ */
/* SHA-NI kernels (x86-64 only)                                             */
/* ------------------------------------------------------------------------ */
#if ALX_HAVE_X86

#define ALX_SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* Byte shuffle turning each little-endian lane into the big-endian word. */
#define BSWAP_MASK _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL)

/* K[4q..4q+3] as one vector. */
#define K4(q) _mm_load_si128((const __m128i *)&K256[4 * (q)])

/* H0..H7 -> the two registers sha256rnds2 works on: ABEF = {A,B,E,F} and
 * CDGH = {C,D,G,H}, listed from the highest lane down (lane 3 = A / C). */
ALX_SHANI static inline void shani_load_state(const uint32_t state[8], __m128i *abef, __m128i *cdgh) {
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]); /* lanes 0..3 = A B C D */
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]); /* lanes 0..3 = E F G H */
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);               /* lanes: B A D C */
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);               /* lanes: H G F E */
    *abef = _mm_alignr_epi8(cdab, efgh, 8);                     /* lanes: F E B A */
    *cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);                  /* lanes: H G D C */
}

/* Inverse of shani_load_state: ABEF/CDGH back to H0..H7. */
ALX_SHANI static inline void shani_store_state(uint32_t state[8], __m128i abef, __m128i cdgh) {
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);               /* lanes: A B E F */
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);               /* lanes: G H C D */
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0)); /* A B C D */
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));    /* E F G H */
}

/*
 * Building blocks of one "quad" (rounds 4q..4q+3), following Intel's
 * reference SHA-NI code. S0 holds ABEF and S1 holds CDGH on entry; each
 * sha256rnds2 performs two rounds and the two registers swap roles, so after
 * a full quad S0 is ABEF and S1 is CDGH again. M is W[4q..4q+3].
 *
 *   QLO:  T = W+K for the quad; rounds 4q, 4q+1 (uses low two lanes of T).
 *   QHI:  move the high two lanes of T down; rounds 4q+2, 4q+3.
 *   QMSG2: complete the next quad's words: Mn = msg2(Mn + W[t-7] terms, Mc).
 *          (alignr(Mc, Mp, 4) = W[4q-3..4q], the W[t-7] inputs.)
 *   QMSG1: start the words three quads ahead: Mp = msg1(Mp, Mc)
 *          (= W[t-16] + sigma0(W[t-15])).
 */
#define QLO(S0, S1, M, T, q)                                                 \
    T = _mm_add_epi32(M, K4(q));                                             \
    S1 = _mm_sha256rnds2_epu32(S1, S0, T);
#define QHI(S0, S1, T)                                                       \
    T = _mm_shuffle_epi32(T, 0x0E);                                          \
    S0 = _mm_sha256rnds2_epu32(S0, S1, T);
#define QMSG2(Mn, Mc, Mp, X)                                                 \
    X = _mm_alignr_epi8(Mc, Mp, 4);                                          \
    Mn = _mm_add_epi32(Mn, X);                                               \
    Mn = _mm_sha256msg2_epu32(Mn, Mc);
#define QMSG1(Mp, Mc) Mp = _mm_sha256msg1_epu32(Mp, Mc);

/*
 * The 64 rounds as 16 quads. The four message registers M0..M3 rotate:
 * quad q uses M[q%4] (c), with p = (q-1)%4 and n = (q+1)%4. Which schedule
 * steps a quad needs depends on q:
 *   q = 0, 15      PLAIN (rounds only)
 *   q = 1, 2       MSG1  (rounds + msg1)
 *   q = 3..12      FULL  (rounds + msg2 + msg1)
 *   q = 13, 14     MSG2  (rounds + msg2)
 * The four step macros are supplied by the caller, so the same list drives
 * both the single-stream and the two-stream kernel.
 */
#define SHA256_QUADS(PLAIN, MSG1, FULL, MSG2)                                \
    PLAIN(0, 0)                                                              \
    MSG1(1, 1, 0)                                                            \
    MSG1(2, 2, 1)                                                            \
    FULL(3, 3, 2, 0)                                                         \
    FULL(4, 0, 3, 1)                                                         \
    FULL(5, 1, 0, 2)                                                         \
    FULL(6, 2, 1, 3)                                                         \
    FULL(7, 3, 2, 0)                                                         \
    FULL(8, 0, 3, 1)                                                         \
    FULL(9, 1, 0, 2)                                                         \
    FULL(10, 2, 1, 3)                                                        \
    FULL(11, 3, 2, 0)                                                        \
    FULL(12, 0, 3, 1)                                                        \
    MSG2(13, 1, 0, 2)                                                        \
    MSG2(14, 2, 1, 3)                                                        \
    PLAIN(15, 3)

/* ---- Single stream: variables S0 S1 T X M0..M3 ---- */
#define Q1_PLAIN(q, c)      QLO(S0, S1, M##c, T, q) QHI(S0, S1, T)
#define Q1_MSG1(q, c, p)    QLO(S0, S1, M##c, T, q) QHI(S0, S1, T) QMSG1(M##p, M##c)
#define Q1_FULL(q, c, p, n) QLO(S0, S1, M##c, T, q) QMSG2(M##n, M##c, M##p, X) \
                            QHI(S0, S1, T) QMSG1(M##p, M##c)
#define Q1_MSG2(q, c, p, n) QLO(S0, S1, M##c, T, q) QMSG2(M##n, M##c, M##p, X) \
                            QHI(S0, S1, T)

ALX_SHANI static void sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    const __m128i mask = BSWAP_MASK;
    __m128i S0, S1, T, X, M0, M1, M2, M3;
    shani_load_state(state, &S0, &S1);

    while (nblocks--) {
        const __m128i abef_save = S0, cdgh_save = S1;
        /* W[0..15]: load the block and byte-swap to big-endian words. */
        M0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), mask);
        M1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), mask);
        M2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), mask);
        M3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), mask);

        SHA256_QUADS(Q1_PLAIN, Q1_MSG1, Q1_FULL, Q1_MSG2)

        /* Feed-forward. */
        S0 = _mm_add_epi32(S0, abef_save);
        S1 = _mm_add_epi32(S1, cdgh_save);
        data += 64;
    }
    shani_store_state(state, S0, S1);
}

/*
 * ---- Two streams: variables SA0 SA1 TA XA MA0..MA3 and the B twins ----
 * Every step is issued for A then B, so two independent sha256rnds2 chains
 * alternate: while A's rnds2 is in flight (latency ~4) B's can issue
 * (throughput ~2), which is where the speed-up comes from.
 */
#define Q2_LO(q, c)                                                          \
    QLO(SA0, SA1, MA##c, TA, q) QLO(SB0, SB1, MB##c, TB, q)
#define Q2_HI()                                                              \
    QHI(SA0, SA1, TA) QHI(SB0, SB1, TB)
#define Q2_M2(c, p, n)                                                       \
    QMSG2(MA##n, MA##c, MA##p, XA) QMSG2(MB##n, MB##c, MB##p, XB)
#define Q2_M1(c, p)                                                          \
    QMSG1(MA##p, MA##c) QMSG1(MB##p, MB##c)

/* Prefetch distance in bytes for the two-stream loop. */
#define ALX_X2_PREFETCH 1024

#define Q2_PLAIN(q, c)      Q2_LO(q, c) Q2_HI()
#define Q2_MSG1(q, c, p)    Q2_LO(q, c) Q2_HI() Q2_M1(c, p)
#define Q2_FULL(q, c, p, n) Q2_LO(q, c) Q2_M2(c, p, n) Q2_HI() Q2_M1(c, p)
#define Q2_MSG2(q, c, p, n) Q2_LO(q, c) Q2_M2(c, p, n) Q2_HI()

ALX_SHANI static void sha256_blocks_shani_x2(uint32_t stateA[8], const uint8_t *dataA,
                                             uint32_t stateB[8], const uint8_t *dataB,
                                             size_t nblocks) {
    const __m128i mask = BSWAP_MASK;
    __m128i SA0, SA1, TA, XA, MA0, MA1, MA2, MA3;
    __m128i SB0, SB1, TB, XB, MB0, MB1, MB2, MB3;
    shani_load_state(stateA, &SA0, &SA1);
    shani_load_state(stateB, &SB0, &SB1);

    while (nblocks--) {
        const __m128i abefA = SA0, cdghA = SA1, abefB = SB0, cdghB = SB1;
        /* Software prefetch 16 blocks ahead on both streams. With two
         * streams from DRAM the hardware prefetcher alone lets loads stall
         * the chains (measured ~2.95 vs ~3.3 GB/s aggregate on Zen 3);
         * prefetches never fault, so running past the end is harmless (the
         * address is formed as an integer, not by pointer arithmetic). */
        _mm_prefetch((const char *)((uintptr_t)dataA + ALX_X2_PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char *)((uintptr_t)dataB + ALX_X2_PREFETCH), _MM_HINT_T0);
        /* W[0..15] of both blocks, byte-swapped to big-endian words. */
        MA0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataA + 0)), mask);
        MB0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataB + 0)), mask);
        MA1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataA + 16)), mask);
        MB1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataB + 16)), mask);
        MA2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataA + 32)), mask);
        MB2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataB + 32)), mask);
        MA3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataA + 48)), mask);
        MB3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(dataB + 48)), mask);

        SHA256_QUADS(Q2_PLAIN, Q2_MSG1, Q2_FULL, Q2_MSG2)

        /* Feed-forward for both states. */
        SA0 = _mm_add_epi32(SA0, abefA);
        SA1 = _mm_add_epi32(SA1, cdghA);
        SB0 = _mm_add_epi32(SB0, abefB);
        SB1 = _mm_add_epi32(SB1, cdghB);
        dataA += 64;
        dataB += 64;
    }
    shani_store_state(stateA, SA0, SA1);
    shani_store_state(stateB, SB0, SB1);
}

#endif /* ALX_HAVE_X86 */

/* ------------------------------------------------------------------------ */
/* Block API (dispatching)                                                  */
/* ------------------------------------------------------------------------ */

void alx_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    if (nblocks == 0)
        return;
#if ALX_HAVE_X86
    if (use_shani()) {
        sha256_blocks_shani(state, data, nblocks);
        return;
    }
#endif
    sha256_blocks_portable(state, data, nblocks);
}

void alx_sha256_blocks_x2(uint32_t stateA[8], const uint8_t *dataA,
                          uint32_t stateB[8], const uint8_t *dataB,
                          size_t nblocks) {
    if (nblocks == 0)
        return;
#if ALX_HAVE_X86
    if (use_shani()) {
        sha256_blocks_shani_x2(stateA, dataA, stateB, dataB, nblocks);
        return;
    }
#endif
    /* No two-stream advantage without SHA-NI: just run them one after another. */
    sha256_blocks_portable(stateA, dataA, nblocks);
    sha256_blocks_portable(stateB, dataB, nblocks);
}

/* ------------------------------------------------------------------------ */
/* Incremental API                                                          */
/* ------------------------------------------------------------------------ */

void alx_sha256_init(alx_sha256_ctx *c) {
    memcpy(c->state, H256, sizeof H256);
    c->length = 0;
    c->buffered = 0;
}

/* If the context holds a partial block, top it up from *data. Returns 1 when
 * the buffer became a full block (the caller compresses it and clears
 * `buffered`), 0 otherwise. */
static int fill_buffer(alx_sha256_ctx *c, const uint8_t **data, size_t *len) {
    if (c->buffered == 0 || *len == 0)
        return 0;
    size_t take = 64 - c->buffered;
    if (take > *len)
        take = *len;
    memcpy(c->buffer + c->buffered, *data, take);
    c->buffered += (uint32_t)take;
    *data += take;
    *len -= take;
    return c->buffered == 64;
}

/* Keep the final partial block (< 64 bytes; the buffer is empty here). */
static void stash_tail(alx_sha256_ctx *c, const uint8_t *data, size_t len) {
    if (len) {
        memcpy(c->buffer, data, len);
        c->buffered = (uint32_t)len;
    }
}

void alx_sha256_update(alx_sha256_ctx *c, const uint8_t *data, size_t len) {
    if (len == 0)
        return;
    c->length += len;
    if (fill_buffer(c, &data, &len)) {
        alx_sha256_blocks(c->state, c->buffer, 1);
        c->buffered = 0;
    }
    if (c->buffered)
        return; /* everything went into the still-partial buffer */
    if (len == 0)
        return;
    size_t n = len / 64;
    alx_sha256_blocks(c->state, data, n);
    stash_tail(c, data + n * 64, len - n * 64);
}

void alx_sha256_update_x2(alx_sha256_ctx *a, const uint8_t *dataA, size_t lenA,
                          alx_sha256_ctx *b, const uint8_t *dataB, size_t lenB) {
    a->length += lenA;
    b->length += lenB;

    /* 1. Complete any partial blocks; compress them together when both fill. */
    int fullA = fill_buffer(a, &dataA, &lenA);
    int fullB = fill_buffer(b, &dataB, &lenB);
    if (fullA && fullB)
        alx_sha256_blocks_x2(a->state, a->buffer, b->state, b->buffer, 1);
    else if (fullA)
        alx_sha256_blocks(a->state, a->buffer, 1);
    else if (fullB)
        alx_sha256_blocks(b->state, b->buffer, 1);
    if (fullA)
        a->buffered = 0;
    if (fullB)
        b->buffered = 0;

    /* A context whose buffer is still partial has consumed all its input
     * (lenX == 0 now), so it contributes no whole blocks below. */
    size_t nA = a->buffered ? 0 : lenA / 64;
    size_t nB = b->buffered ? 0 : lenB / 64;

    /* 2. Whole blocks both streams have: the interleaved kernel. */
    size_t n2 = nA < nB ? nA : nB;
    alx_sha256_blocks_x2(a->state, dataA, b->state, dataB, n2);

    /* 3. Whole blocks only one stream has left: the single kernel. */
    if (nA > n2)
        alx_sha256_blocks(a->state, dataA + n2 * 64, nA - n2);
    if (nB > n2)
        alx_sha256_blocks(b->state, dataB + n2 * 64, nB - n2);

    /* 4. Keep the tails. (Pointers are only offset when there is data, so
     * NULL with length 0 is accepted.) */
    if (a->buffered == 0 && lenA)
        stash_tail(a, dataA + nA * 64, lenA - nA * 64);
    if (b->buffered == 0 && lenB)
        stash_tail(b, dataB + nB * 64, lenB - nB * 64);
}

void alx_sha256_final(alx_sha256_ctx *c, uint8_t out[32]) {
    /* Padding (§5.1.1): 0x80, zeros to 56 mod 64, then the bit length as a
     * big-endian 64-bit integer. */
    uint64_t bits = c->length * 8;
    size_t n = c->buffered;
    c->buffer[n++] = 0x80;
    if (n > 56) {
        memset(c->buffer + n, 0, 64 - n);
        alx_sha256_blocks(c->state, c->buffer, 1);
        n = 0;
    }
    memset(c->buffer + n, 0, 56 - n);
    store_be32(c->buffer + 56, (uint32_t)(bits >> 32));
    store_be32(c->buffer + 60, (uint32_t)bits);
    alx_sha256_blocks(c->state, c->buffer, 1);

    /* Digest = H0..H7 as big-endian bytes. */
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, c->state[i]);
    c->buffered = 0;
}

void alx_sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    alx_sha256_ctx c;
    alx_sha256_init(&c);
    alx_sha256_update(&c, data, len);
    alx_sha256_final(&c, out);
}
