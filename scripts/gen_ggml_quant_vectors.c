// Writes the test vectors of tests/data/ggml_quants/: for each GGUF block
// type dsv3 reads, valid blocks with pseudo-random contents and the floats
// ggml's own dequantize_row_* makes of them, then float rows and the blocks
// ggml's quantize_row_*_ref makes of them. Build against a ggml checkout
// (see tests/data/ggml_quants/README.md); ggml-quants.c needs only the four
// helpers stubbed below, which the reference paths never reach.
//
// File layout (little-endian): "DSQV", u32 ggml type, u32 n_dequant values,
// u32 n_quant values, then dequant blocks, dequant floats, quant inputs,
// quant blocks.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-quants.h"
#include "ggml.h"

void ggml_abort(const char* file, int line, const char* fmt, ...) {
  fprintf(stderr, "ggml_abort at %s:%d\n", file, line);
  abort();
}
size_t ggml_type_size(enum ggml_type t) { abort(); }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { abort(); }
const char* ggml_type_name(enum ggml_type t) { abort(); }

static uint64_t g_state = 0x9E3779B97F4A7C15ull;
static uint64_t Next(void) {  // splitmix64
  uint64_t z = (g_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static float Uniform(void) { return (float)((Next() >> 40) * (1.0 / 16777216.0)); }
static float Normal(void) {
  const double u = (Next() >> 11) * (1.0 / 9007199254740992.0) + 1e-300, v = (Next() >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

// A finite f16: block 0 of each file gets 0, block 1 a subnormal, others
// exponents 2^-14 .. 2^2 with random sign and mantissa.
static uint16_t RandomHalf(int block) {
  if (block == 0) return 0;
  const uint16_t sign = (Next() & 1) ? 0x8000 : 0;
  if (block == 1) return sign | (uint16_t)(1 + Next() % 1023);
  return sign | (uint16_t)((1 + Next() % 17) << 10) | (uint16_t)(Next() % 1024);
}

typedef void (*DequantFn)(const void*, float*, int64_t);
typedef void (*QuantFn)(const float*, void*, int64_t);

struct Type {
  const char* name;
  int id, block_elems, block_bytes;
  int half_offsets[3];  // f16 fields of the block (-1 ends the list)
  DequantFn dequant;
  QuantFn quant;
};

#define FN(f) ((DequantFn)(f))
#define QF(f) ((QuantFn)(f))
static const struct Type kTypes[] = {
    {"q4_0", 2, 32, 18, {0, -1}, FN(dequantize_row_q4_0), QF(quantize_row_q4_0_ref)},
    {"q4_1", 3, 32, 20, {0, 2, -1}, FN(dequantize_row_q4_1), QF(quantize_row_q4_1_ref)},
    {"q5_0", 6, 32, 22, {0, -1}, FN(dequantize_row_q5_0), QF(quantize_row_q5_0_ref)},
    {"q5_1", 7, 32, 24, {0, 2, -1}, FN(dequantize_row_q5_1), QF(quantize_row_q5_1_ref)},
    {"q8_0", 8, 32, 34, {0, -1}, FN(dequantize_row_q8_0), QF(quantize_row_q8_0_ref)},
    {"q2_k", 10, 256, 84, {80, 82, -1}, FN(dequantize_row_q2_K), QF(quantize_row_q2_K_ref)},
    {"q3_k", 11, 256, 110, {108, -1}, FN(dequantize_row_q3_K), QF(quantize_row_q3_K_ref)},
    {"q4_k", 12, 256, 144, {0, 2, -1}, FN(dequantize_row_q4_K), QF(quantize_row_q4_K_ref)},
    {"q5_k", 13, 256, 176, {0, 2, -1}, FN(dequantize_row_q5_K), QF(quantize_row_q5_K_ref)},
    {"q6_k", 14, 256, 210, {208, -1}, FN(dequantize_row_q6_K), QF(quantize_row_q6_K_ref)},
    {"iq4_nl", 20, 32, 18, {0, -1}, FN(dequantize_row_iq4_nl), QF(quantize_row_iq4_nl_ref)},
    {"iq4_xs", 23, 256, 136, {0, -1}, FN(dequantize_row_iq4_xs), QF(quantize_row_iq4_xs_ref)},
};

// Input block `b` of a quantization row: a different kind of data each.
// Never all-zero first: ggml's IQ4_NL leaves an all-zero block's indices
// as the previous block's (uninitialised for the first block of a row).
static void FillInput(float* x, int n, int b) {
  const float scale = powf(10.0f, (float)(b % 5) - 3.0f);
  for (int i = 0; i < n; ++i) {
    switch ((b + 1) % 8) {
      case 0: x[i] = 0.0f; break;                                   // all zero
      case 1: x[i] = 0.75f; break;                                  // constant
      case 2: x[i] = Uniform() * scale; break;                      // all positive
      case 3: x[i] = -Uniform() * scale; break;                     // all negative
      case 4: x[i] = (i == n / 3 ? 40.0f : 0.02f * Normal()); break; // one outlier
      case 5: x[i] = 1e-9f * Normal(); break;                       // tiny
      default: x[i] = scale * Normal(); break;                      // gaussian
    }
  }
}

static void Write(FILE* f, const void* p, size_t n) {
  if (fwrite(p, 1, n, f) != n) { perror("write"); exit(1); }
}

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]); return 2; }
  for (size_t t = 0; t < sizeof(kTypes) / sizeof(kTypes[0]); ++t) {
    const struct Type* ty = &kTypes[t];
    const int dq_blocks = ty->block_elems == 32 ? 16 : 6, q_blocks = ty->block_elems == 32 ? 32 : 12;
    const uint32_t n_dq = (uint32_t)(dq_blocks * ty->block_elems), n_q = (uint32_t)(q_blocks * ty->block_elems);
    uint8_t* blocks = malloc((size_t)dq_blocks * ty->block_bytes);
    uint8_t* qblocks = calloc((size_t)q_blocks, ty->block_bytes);
    float* out = malloc(n_dq * sizeof(float));
    float* in = malloc(n_q * sizeof(float));
    for (int b = 0; b < dq_blocks; ++b) {
      uint8_t* p = blocks + (size_t)b * ty->block_bytes;
      for (int i = 0; i < ty->block_bytes; ++i) p[i] = (uint8_t)Next();
      for (int h = 0; h < 3 && ty->half_offsets[h] >= 0; ++h) {
        const uint16_t v = RandomHalf(b == 0 && h > 0 ? 2 : b);  // block 0: d = 0 but a real min
        memcpy(p + ty->half_offsets[h], &v, 2);
      }
    }
    ty->dequant(blocks, out, n_dq);
    for (int b = 0; b < q_blocks; ++b) FillInput(in + b * ty->block_elems, ty->block_elems, b);
    ty->quant(in, qblocks, n_q);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.bin", argv[1], ty->name);
    FILE* f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    const uint32_t head[4] = {0x56515344u /* "DSQV" */, (uint32_t)ty->id, n_dq, n_q};
    Write(f, head, sizeof(head));
    Write(f, blocks, (size_t)dq_blocks * ty->block_bytes);
    Write(f, out, n_dq * sizeof(float));
    Write(f, in, n_q * sizeof(float));
    Write(f, qblocks, (size_t)q_blocks * ty->block_bytes);
    fclose(f);
    free(blocks), free(qblocks), free(out), free(in);
  }
  return 0;
}
