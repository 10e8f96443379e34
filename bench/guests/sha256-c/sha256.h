// SHA-256 (FIPS 180-4), portable C. The CPU-bound benchmark compiles this same file for
// wasm32-wasi (the guest) and natively (bench/src/bin/native-hello.rs) and compares them.
#ifndef BENCH_SHA256_H
#define BENCH_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t state[8];
  uint64_t length;
  uint8_t block[64];
  size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len);
void sha256_final(sha256_ctx *ctx, uint8_t digest[32]);

// The benchmark's work: the SHA-256 of `len` bytes where byte i is (i * 131 + 7) mod 256,
// generated in 4 KiB chunks so no large buffer is touched. Writes 64 hex digits + NUL.
void sha256_pattern_hex(size_t len, char hex[65]);
#endif
