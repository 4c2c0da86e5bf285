// Shared by the window attention core's code paths (window_attention_cpu.cc: portable loops,
// AVX2/FMA and the FFI handler; window_attention_avx512.cc: AVX-512): the problem, the per-thread
// scratch, the exp polynomial and the packing of one (window, head) unit.
#ifndef OV2SEG_KERNELS_WINDOW_ATTENTION_NATIVE_COMMON_H_
#define OV2SEG_KERNELS_WINDOW_ATTENTION_NATIVE_COMMON_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ov2seg_window_attention {

struct Problem {
  int64_t g, n, h, d, windows;
  int64_t np;  // n rounded up to a multiple of 16 (the k^T row stride)
  float scale;
  const float* qkv;
  const float* bias;
  const float* mask;
  float* out;
};

// exp(x) for x <= 0 (softmax arguments after the max is subtracted); x below -87 gives
// exp(-87), which is below every float that can change a sum that includes exp(0) = 1.
// Every path evaluates this polynomial with the same operations in the same order.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kExpLow = -87.0f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

inline float ExpScalar(float x) {
  x = std::max(x, kExpLow);
  const float k = std::nearbyint(x * kLog2e);
  float r = x - k * kLn2Hi;
  r = r - k * kLn2Lo;
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  p = p * (r * r) + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Unit (window g, head h) scratch: q (N x D, scaled), k^T (D x NP, zero-padded), v (N x D),
// a block of rows of logits/probabilities (kMaxBlockRows x NP).
constexpr int64_t kMaxBlockRows = 8;

struct Scratch {
  std::vector<float> q, kt, v, s;
  void Fit(const Problem& pr) {
    q.resize(pr.n * pr.d);
    kt.resize(pr.d * pr.np);  // columns past n are read but never used
    v.resize(pr.n * pr.d);
    s.resize(kMaxBlockRows * pr.np);
  }
};

// Copies q (times scale) and v of unit (g, h) into scratch; k^T is left to the caller.
inline void PackQV(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  const int64_t d = pr.d, row = 3 * pr.h * d;  // row: stride between tokens in qkv
  const float* base = pr.qkv + g * pr.n * row + h * d;
  for (int64_t i = 0; i < pr.n; ++i) {
    const float* q = base + i * row;
    float* qs = sc.q.data() + i * d;
    for (int64_t c = 0; c < d; ++c) qs[c] = q[c] * pr.scale;
    std::memcpy(sc.v.data() + i * d, q + 2 * pr.h * d, d * sizeof(float));
  }
}

// k^T rows [first token i0, end): kt[c][i] = k[i][c].
inline void TransposeKTail(const Problem& pr, int64_t g, int64_t h, int64_t i0, Scratch& sc) {
  const int64_t d = pr.d, row = 3 * pr.h * d;
  const float* base = pr.qkv + g * pr.n * row + pr.h * d + h * d;
  for (int64_t i = i0; i < pr.n; ++i)
    for (int64_t c = 0; c < d; ++c) sc.kt[c * pr.np + i] = base[i * row + c];
}

// The vector paths (x86-64 only; each is defined where it is compiled for its instruction set;
// ov2seg_native::CpuRuns says whether this CPU runs one). PackAvx2 packs q, v and k^T (by 8 x 8
// register transposes; head width a multiple of 8).
void PackAvx2(const Problem& pr, int64_t g, int64_t h, Scratch& sc);
void UnitAvx2(const Problem& pr, int64_t g, int64_t h, Scratch& sc);
void UnitAvx512(const Problem& pr, int64_t g, int64_t h, Scratch& sc);

}  // namespace ov2seg_window_attention

#endif  // OV2SEG_KERNELS_WINDOW_ATTENTION_NATIVE_COMMON_H_
