/*
 * sha256x2_test.c — standalone correctness test and benchmark for
 * Sources/CSHA256x2 (not part of the SwiftPM build).
 *
 * Build and run from the package root:
 *   cc -O2 -Wall -Wextra -ISources/CSHA256x2/include \
 *      Sources/CSHA256x2/sha256x2.c Benchmarks/sha256x2/sha256x2_test.c \
 *      -lcrypto -o /tmp/sha256x2_test
 *   /tmp/sha256x2_test [bench_MiB=1024] [reps=3] [seed]
 * bench_MiB = 0 skips the benchmark. Exit status is nonzero on any mismatch.
 *
 * Correctness is checked against OpenSSL's SHA256(), for both the SHA-NI
 * path and the portable path (forced with alx_sha256_force_portable(1)).
 * Benchmark figures are printed as `name: value unit` lines; each is the
 * best of `reps` runs over an in-memory buffer. GB = 1e9 bytes.
 */
#include "sha256x2.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

static void fill_random(uint8_t *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rng();
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] = (uint8_t)rng();
}

/* A random piece size for splitting `remaining` bytes: a mix of tiny,
 * around-a-block and large pieces, so buffer edges get exercised. */
static size_t random_piece(size_t remaining) {
    size_t n;
    switch (rng() % 4) {
    case 0: n = rng_below(4); break;
    case 1: n = rng_below(130); break;
    case 2: n = rng_below(5000); break;
    default: n = rng_below(remaining / 3 + 2); break;
    }
    return n > remaining ? remaining : n;
}

static int failures = 0;
static long checks = 0;

static void check(const char *what, size_t len, const uint8_t got[32], const uint8_t want[32]) {
    checks++;
    if (memcmp(got, want, 32) != 0) {
        if (failures < 20)
            fprintf(stderr, "MISMATCH %s (len %zu)\n", what, len);
        failures++;
    }
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- correctness ------------------------------------------------------- */

/* Incremental hash of data with random split points. */
static void hash_split(const uint8_t *data, size_t len, uint8_t out[32]) {
    alx_sha256_ctx c;
    alx_sha256_init(&c);
    size_t off = 0;
    while (off < len) {
        size_t n = random_piece(len - off);
        alx_sha256_update(&c, data + off, n);
        off += n;
    }
    alx_sha256_update(&c, NULL, 0);
    alx_sha256_final(&c, out);
}

/* Two inputs through alx_sha256_update_x2 with independent random splits. */
static void hash_pair_x2(const uint8_t *a, size_t lenA, const uint8_t *b, size_t lenB,
                         uint8_t outA[32], uint8_t outB[32]) {
    alx_sha256_ctx ca, cb;
    alx_sha256_init(&ca);
    alx_sha256_init(&cb);
    size_t offA = 0, offB = 0;
    while (offA < lenA || offB < lenB) {
        size_t nA = random_piece(lenA - offA);
        size_t nB = random_piece(lenB - offB);
        alx_sha256_update_x2(&ca, a + offA, nA, &cb, b + offB, nB);
        offA += nA;
        offB += nB;
    }
    alx_sha256_final(&ca, outA);
    alx_sha256_final(&cb, outB);
}

static void run_correctness(const char *path, const uint8_t *buf, size_t bufsize) {
    uint8_t got[32], got2[32], want[32], want2[32];
    size_t before = (size_t)failures;
    long checks_before = checks;

    /* FIPS 180-4 / NIST example vectors. */
    {
        static const uint8_t abc_digest[32] = {
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
        static const uint8_t empty_digest[32] = {
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
            0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
        alx_sha256((const uint8_t *)"abc", 3, got);
        check("vector abc", 3, got, abc_digest);
        alx_sha256(NULL, 0, got);
        check("vector empty", 0, got, empty_digest);
    }

    /* Every length 0..300: one-shot and random splits. */
    for (size_t len = 0; len <= 300; len++) {
        const uint8_t *p = buf + rng_below(64); /* also vary alignment */
        SHA256(p, len, want);
        alx_sha256(p, len, got);
        check("one-shot 0..300", len, got, want);
        hash_split(p, len, got);
        check("split 0..300", len, got, want);
    }

    /* Random lengths up to 5 MB: one-shot and random splits. */
    for (int i = 0; i < 24; i++) {
        size_t len = rng_below(5000001);
        const uint8_t *p = buf + rng_below(bufsize - len);
        SHA256(p, len, want);
        alx_sha256(p, len, got);
        check("one-shot random", len, got, want);
        hash_split(p, len, got);
        check("split random", len, got, want);
    }

    /* Raw kernels: x2 must equal two single calls, from arbitrary states. */
    for (int i = 0; i < 200; i++) {
        uint32_t sA[8], sB[8], rA[8], rB[8];
        for (int j = 0; j < 8; j++) {
            sA[j] = rA[j] = (uint32_t)rng();
            sB[j] = rB[j] = (uint32_t)rng();
        }
        size_t nb = rng_below(40);
        const uint8_t *pA = buf + rng_below(bufsize - nb * 64);
        const uint8_t *pB = (i % 5 == 0) ? pA : buf + rng_below(bufsize - nb * 64);
        alx_sha256_blocks_x2(sA, pA, sB, pB, nb);
        alx_sha256_blocks(rA, pA, nb);
        alx_sha256_blocks(rB, pB, nb);
        check("blocks_x2 A", nb * 64, (const uint8_t *)sA, (const uint8_t *)rA);
        check("blocks_x2 B", nb * 64, (const uint8_t *)sB, (const uint8_t *)rB);
    }

    /* update_x2: two different random inputs of different lengths, random
     * split points on each side (small lengths and up to 5 MB). */
    for (int i = 0; i < 300; i++) {
        size_t maxlen = (i < 250) ? 700 : 5000001;
        size_t lenA = rng_below(maxlen), lenB = rng_below(maxlen);
        const uint8_t *a = buf + rng_below(bufsize - lenA);
        const uint8_t *b = buf + rng_below(bufsize - lenB);
        SHA256(a, lenA, want);
        SHA256(b, lenB, want2);
        hash_pair_x2(a, lenA, b, lenB, got, got2);
        check("update_x2 A", lenA, got, want);
        check("update_x2 B", lenB, got2, want2);
    }

    /* The Alexandria pattern: one stream hashes the whole "file", the other
     * hashes consecutive content-defined "chunks" of the same bytes, both fed
     * from the same read buffers of random size. */
    for (int i = 0; i < 6; i++) {
        size_t len = rng_below(4000001);
        const uint8_t *file = buf + rng_below(bufsize - len);
        alx_sha256_ctx whole, chunk;
        alx_sha256_init(&whole);
        alx_sha256_init(&chunk);
        size_t off = 0, chunk_start = 0;
        size_t chunk_end = 1 + rng_below(300000);
        while (off < len) {
            size_t n = 1 + rng_below(200000);
            if (n > len - off)
                n = len - off;
            size_t done = 0;
            while (done < n) {
                /* Feed up to the next chunk boundary, then close the chunk. */
                size_t to_boundary = chunk_end - (off + done);
                size_t m = n - done < to_boundary ? n - done : to_boundary;
                alx_sha256_update_x2(&whole, file + off + done, m, &chunk, file + off + done, m);
                done += m;
                if (off + done == chunk_end) {
                    alx_sha256_final(&chunk, got);
                    SHA256(file + chunk_start, chunk_end - chunk_start, want);
                    check("file+chunk: chunk", chunk_end - chunk_start, got, want);
                    alx_sha256_init(&chunk);
                    chunk_start = chunk_end;
                    chunk_end += 1 + rng_below(300000);
                }
            }
            off += n;
        }
        alx_sha256_final(&chunk, got);
        SHA256(file + chunk_start, len - chunk_start, want);
        check("file+chunk: last chunk", len - chunk_start, got, want);
        alx_sha256_final(&whole, got);
        SHA256(file, len, want);
        check("file+chunk: whole", len, got, want);
    }

    printf("correctness_%s: %ld checks, %zu failures\n", path, checks - checks_before,
           (size_t)failures - before);
}

/* ---- benchmark --------------------------------------------------------- */

static void report(const char *name, size_t bytes, double best) {
    printf("%s: %.3f GB/s\n", name, (double)bytes / best / 1e9);
}

static void run_benchmark(uint8_t *buf, size_t size, int reps, int have_ni) {
    uint8_t d1[32], d2[32], ref[32];
    double t, best;
    size_t half = size / 2;

    printf("bench_bytes: %zu bytes\n", size);

    /* OpenSSL one-shot (on SHA-NI CPUs OpenSSL uses SHA-NI itself). */
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        t = now_sec();
        SHA256(buf, size, ref);
        t = now_sec() - t;
        if (t < best) best = t;
    }
    report("openssl_sha256", size, best);

    if (have_ni) {
        alx_sha256_force_portable(0);

        /* Single stream over the whole buffer. */
        double best1 = 1e30;
        for (int r = 0; r < reps; r++) {
            t = now_sec();
            alx_sha256(buf, size, d1);
            t = now_sec() - t;
            if (t < best1) best1 = t;
        }
        check("bench single vs openssl", size, d1, ref);
        report("shani_single", size, best1);

        /* Two streams: first half and second half of the buffer, aggregate
         * throughput = both halves' bytes / time. */
        uint8_t wantA[32], wantB[32];
        SHA256(buf, half, wantA);
        SHA256(buf + half, size - half, wantB);
        double best2 = 1e30;
        for (int r = 0; r < reps; r++) {
            alx_sha256_ctx a, b;
            t = now_sec();
            alx_sha256_init(&a);
            alx_sha256_init(&b);
            alx_sha256_update_x2(&a, buf, half, &b, buf + half, size - half);
            alx_sha256_final(&a, d1);
            alx_sha256_final(&b, d2);
            t = now_sec() - t;
            if (t < best2) best2 = t;
        }
        check("bench x2 A", half, d1, wantA);
        check("bench x2 B", size - half, d2, wantB);
        report("shani_x2_aggregate", size, best2);

        /* Two streams over the SAME bytes (whole-file + per-chunk pattern),
         * stream B offset by 37 bytes so its blocks are misaligned to A's;
         * aggregate = bytes hashed by both streams / time. */
        double best3 = 1e30;
        for (int r = 0; r < reps; r++) {
            alx_sha256_ctx a, b;
            t = now_sec();
            alx_sha256_init(&a);
            alx_sha256_init(&b);
            alx_sha256_update_x2(&a, buf, size, &b, buf + 37, size - 37);
            alx_sha256_final(&a, d1);
            alx_sha256_final(&b, d2);
            t = now_sec() - t;
            if (t < best3) best3 = t;
        }
        check("bench x2 same-data A", size, d1, ref);
        report("shani_x2_same_data_aggregate", 2 * size - 37, best3);

        printf("x2_speedup_vs_single: %.3f x\n", best1 / best2);
        printf("x2_same_data_speedup_vs_two_singles: %.3f x\n", (2 * best1) / best3);
    } else {
        printf("shani_single: n/a (no SHA-NI)\n");
        printf("shani_x2_aggregate: n/a (no SHA-NI)\n");
    }

    /* Portable fallback. */
    alx_sha256_force_portable(1);
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        t = now_sec();
        alx_sha256(buf, size, d1);
        t = now_sec() - t;
        if (t < best) best = t;
    }
    check("bench portable vs openssl", size, d1, ref);
    report("portable_single", size, best);
    alx_sha256_force_portable(0);
}

int main(int argc, char **argv) {
    size_t bench_mib = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1024;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1) reps = 1;
    if (argc > 3) rng_state = strtoull(argv[3], NULL, 0) | 1;

    int have_ni = alx_sha256_ni_available();
    printf("sha_ni_available: %d\n", have_ni);

    /* Test data: 12 MB of random bytes (slices of it are the test inputs). */
    size_t tsize = 12u << 20;
    uint8_t *tbuf = malloc(tsize);
    if (!tbuf) { perror("malloc"); return 2; }
    fill_random(tbuf, tsize);

    uint64_t seed = rng_state;
    if (have_ni) {
        alx_sha256_force_portable(0);
        run_correctness("shani", tbuf, tsize);
    }
    rng_state = seed; /* same inputs for the portable path */
    alx_sha256_force_portable(1);
    run_correctness("portable", tbuf, tsize);
    alx_sha256_force_portable(0);
    free(tbuf);

    if (bench_mib > 0) {
        size_t size = bench_mib << 20;
        uint8_t *buf = malloc(size);
        if (!buf) { perror("malloc"); return 2; }
        fill_random(buf, size);
        run_benchmark(buf, size, reps, have_ni);
        free(buf);
    }

    printf("result: %s (%ld checks, %d failures)\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
