// Windowed multi-head self-attention core on CPU (Swin's), as an XLA FFI handler (forward only).
//
// The same computation as kernels/window_attention/reference.py for one call:
//   qkv   (G, N, 3, H, D)  the qkv projection of G windows of N tokens (G = images * windows)
//   bias  (H, N, N)        relative position bias, added to every window's logits
//   mask  (W, N, N)        additive mask of window g % W (W = 0: no mask)
//   out   (G, N, H, D)     softmax((q * scale) k^T + bias + mask) v, heads side by side per token
// XLA runs this as two batched matmuls of 144x32 tiles, a softmax and two transposes, and spends
// most of it moving the (G, H, N, N) logits through memory. Here one (window, head) unit packs its
// q, k^T and v (a few tens of KB, in L1/L2), then, a block of query rows at a time, computes the
// logits, the softmax and the output rows without writing the logits anywhere but a small
// block-rows x N scratch. The vector paths scale output rows by 1 / sum instead of dividing every
// probability. Units write disjoint slices of `out` and run on XLA's intra-op thread pool.
//
// Three code paths compute the same values to float rounding, chosen at run time (or by the
// `path` attribute, for tests): AVX-512 (window_attention_avx512.cc; head width a multiple of
// 16), AVX2/FMA (head width a multiple of 8; blocks of six rows, logits two rows and output three
// rows per register tile) and portable loops. All take exp from one polynomial (degree 6 on
// [-ln2/2, ln2/2] after range reduction by powers of two); the tests hold every path to the
// reference within 2e-5.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "native/cpu_features.h"
#include "native/parallel_for.h"
#include "window_attention/native/window_attention_common.h"
#include "xla/ffi/api/ffi.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define OV2SEG_X86 1
#define OV2SEG_AVX2 __attribute__((target("avx2,fma")))
#else
#define OV2SEG_X86 0
#endif

namespace ffi = xla::ffi;

namespace ov2seg_window_attention {
namespace {

using ov2seg_native::ParallelFor;

void Pack(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  PackQV(pr, g, h, sc);
  TransposeKTail(pr, g, h, 0, sc);
}

// Logits rows [i0, i0 + rows) plus bias and mask, then softmax in place (the first n columns).
void SoftmaxRowsPortable(const Problem& pr, int64_t g, int64_t h, int64_t i0, int64_t rows,
                         float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * pr.np;
    const float* b = pr.bias + (h * pr.n + i0 + r) * pr.n;
    const float* m = pr.windows ? pr.mask + ((g % pr.windows) * pr.n + i0 + r) * pr.n : nullptr;
    float top = -INFINITY;
    for (int64_t j = 0; j < pr.n; ++j) {
      float x = row[j] + b[j];
      if (m) x = x + m[j];
      row[j] = x;
      top = std::max(top, x);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < pr.n; ++j) {
      row[j] = ExpScalar(row[j] - top);
      sum += row[j];
    }
    for (int64_t j = 0; j < pr.n; ++j) row[j] = row[j] / sum;
  }
}

void UnitPortable(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  Pack(pr, g, h, sc);
  for (int64_t i0 = 0; i0 < pr.n; i0 += 2) {
    const int64_t rows = std::min<int64_t>(2, pr.n - i0);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = sc.s.data() + r * pr.np;
      const float* q = sc.q.data() + (i0 + r) * pr.d;
      for (int64_t j = 0; j < pr.n; ++j) row[j] = 0.0f;
      for (int64_t c = 0; c < pr.d; ++c) {
        const float* k = sc.kt.data() + c * pr.np;
        for (int64_t j = 0; j < pr.n; ++j) row[j] += q[c] * k[j];
      }
    }
    SoftmaxRowsPortable(pr, g, h, i0, rows, sc.s.data());
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = sc.s.data() + r * pr.np;
      float* o = pr.out + ((g * pr.n + i0 + r) * pr.h + h) * pr.d;
      for (int64_t c = 0; c < pr.d; ++c) o[c] = 0.0f;
      for (int64_t j = 0; j < pr.n; ++j) {
        const float* v = sc.v.data() + j * pr.d;
        for (int64_t c = 0; c < pr.d; ++c) o[c] += p[j] * v[c];
      }
    }
  }
}

#if OV2SEG_X86

OV2SEG_AVX2 inline __m256 Exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpLow));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

OV2SEG_AVX2 inline float HorizontalMax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

OV2SEG_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// s[r][col : col + 8V] = q[r] . k^T[:, col : col + 8V] for R rows. The accumulators are named
// variables (an array of vectors is kept in memory by some compilers).
#define OV2SEG_TILE_STEP(u, LOAD)                                 \
  if constexpr (V > u) {                                         \
    const __m256 x = LOAD;                                       \
    a0##u = _mm256_fmadd_ps(b0, x, a0##u);                       \
    if constexpr (R > 1) a1##u = _mm256_fmadd_ps(b1, x, a1##u);  \
    if constexpr (R > 2) a2##u = _mm256_fmadd_ps(b2, x, a2##u);  \
  }
#define OV2SEG_TILE_STORE(u, DST, S0, S1, S2)                                          \
  if constexpr (V > u) {                                                              \
    _mm256_storeu_ps(DST + 8 * u, _mm256_mul_ps(a0##u, S0));                          \
    if constexpr (R > 1) _mm256_storeu_ps(DST + stride + 8 * u, _mm256_mul_ps(a1##u, S1)); \
    if constexpr (R > 2)                                                              \
      _mm256_storeu_ps(DST + 2 * stride + 8 * u, _mm256_mul_ps(a2##u, S2));           \
  }

template <int R, int V>
OV2SEG_AVX2 inline void LogitTile(const Problem& pr, const float* q, const float* kt, float* s,
                                  int64_t col) {
  static_assert(R >= 1 && R <= 2 && V >= 1 && V <= 6, "tile too large for 16 registers");
  const int64_t d = pr.d, np = pr.np, stride = np;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00;
  __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a24 = a00, a25 = a00;  // unused (R <= 2)
  const float* k = kt + col;
  for (int64_t c = 0; c < d; ++c, k += np) {
    const __m256 b0 = _mm256_broadcast_ss(q + c);
    const __m256 b1 = R > 1 ? _mm256_broadcast_ss(q + d + c) : b0;
    const __m256 b2 = b0;
    OV2SEG_TILE_STEP(0, _mm256_loadu_ps(k))
    OV2SEG_TILE_STEP(1, _mm256_loadu_ps(k + 8))
    OV2SEG_TILE_STEP(2, _mm256_loadu_ps(k + 16))
    OV2SEG_TILE_STEP(3, _mm256_loadu_ps(k + 24))
    OV2SEG_TILE_STEP(4, _mm256_loadu_ps(k + 32))
    OV2SEG_TILE_STEP(5, _mm256_loadu_ps(k + 40))
  }
  const __m256 one = _mm256_set1_ps(1.0f);
  float* dst = s + col;
  OV2SEG_TILE_STORE(0, dst, one, one, one)
  OV2SEG_TILE_STORE(1, dst, one, one, one)
  OV2SEG_TILE_STORE(2, dst, one, one, one)
  OV2SEG_TILE_STORE(3, dst, one, one, one)
  OV2SEG_TILE_STORE(4, dst, one, one, one)
  OV2SEG_TILE_STORE(5, dst, one, one, one)
}

// k^T by 8 x 8 blocks (8 tokens x 8 channels), then the last n % 8 tokens one by one.
OV2SEG_AVX2 void PackKAvx2(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  PackQV(pr, g, h, sc);
  const int64_t d = pr.d, np = pr.np, row = 3 * pr.h * d, full = pr.n - pr.n % 8;
  const float* base = pr.qkv + g * pr.n * row + pr.h * d + h * d;
  for (int64_t i = 0; i < full; i += 8) {
    for (int64_t c = 0; c < d; c += 8) {
      const float* k = base + i * row + c;
      __m256 r0 = _mm256_loadu_ps(k), r1 = _mm256_loadu_ps(k + row);
      __m256 r2 = _mm256_loadu_ps(k + 2 * row), r3 = _mm256_loadu_ps(k + 3 * row);
      __m256 r4 = _mm256_loadu_ps(k + 4 * row), r5 = _mm256_loadu_ps(k + 5 * row);
      __m256 r6 = _mm256_loadu_ps(k + 6 * row), r7 = _mm256_loadu_ps(k + 7 * row);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      r0 = _mm256_shuffle_ps(t0, t2, 0x44);
      r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      r2 = _mm256_shuffle_ps(t1, t3, 0x44);
      r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      r4 = _mm256_shuffle_ps(t4, t6, 0x44);
      r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      r6 = _mm256_shuffle_ps(t5, t7, 0x44);
      r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* out = sc.kt.data() + c * np + i;
      _mm256_storeu_ps(out, _mm256_permute2f128_ps(r0, r4, 0x20));
      _mm256_storeu_ps(out + np, _mm256_permute2f128_ps(r1, r5, 0x20));
      _mm256_storeu_ps(out + 2 * np, _mm256_permute2f128_ps(r2, r6, 0x20));
      _mm256_storeu_ps(out + 3 * np, _mm256_permute2f128_ps(r3, r7, 0x20));
      _mm256_storeu_ps(out + 4 * np, _mm256_permute2f128_ps(r0, r4, 0x31));
      _mm256_storeu_ps(out + 5 * np, _mm256_permute2f128_ps(r1, r5, 0x31));
      _mm256_storeu_ps(out + 6 * np, _mm256_permute2f128_ps(r2, r6, 0x31));
      _mm256_storeu_ps(out + 7 * np, _mm256_permute2f128_ps(r3, r7, 0x31));
    }
  }
  TransposeKTail(pr, g, h, full, sc);
}

template <int R>
OV2SEG_AVX2 void LogitRows(const Problem& pr, const float* q, const float* kt, float* s) {
  int64_t col = 0;
  for (; col + 48 <= pr.np; col += 48) LogitTile<R, 6>(pr, q, kt, s, col);
  switch ((pr.np - col) / 8) {
    case 5: LogitTile<R, 5>(pr, q, kt, s, col); break;
    case 4: LogitTile<R, 4>(pr, q, kt, s, col); break;
    case 3: LogitTile<R, 3>(pr, q, kt, s, col); break;
    case 2: LogitTile<R, 2>(pr, q, kt, s, col); break;
    case 1: LogitTile<R, 1>(pr, q, kt, s, col); break;
    default: break;
  }
}

// Adds bias and mask to one row of logits, replaces it by exp(x - max) and returns 1 / sum
// (the output rows are scaled by it, instead of dividing every probability).
OV2SEG_AVX2 float SoftmaxRow(const Problem& pr, const float* b, const float* m, float* row) {
  const int64_t n = pr.n, full = n - n % 8;
  __m256 top8 = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 8) {
    __m256 x = _mm256_add_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(b + j));
    if (m) x = _mm256_add_ps(x, _mm256_loadu_ps(m + j));
    _mm256_storeu_ps(row + j, x);
    top8 = _mm256_max_ps(top8, x);
  }
  float top = HorizontalMax(top8);
  for (int64_t j = full; j < n; ++j) {
    float x = row[j] + b[j];
    if (m) x = x + m[j];
    row[j] = x;
    top = std::max(top, x);
  }
  const __m256 top_v = _mm256_set1_ps(top);
  __m256 sum8 = _mm256_setzero_ps();
  for (int64_t j = 0; j < full; j += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), top_v));
    _mm256_storeu_ps(row + j, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float sum = HorizontalSum(sum8);
  for (int64_t j = full; j < n; ++j) {
    row[j] = ExpScalar(row[j] - top);
    sum += row[j];
  }
  return 1.0f / sum;
}

// out rows [i0, i0 + R) [col : col + 8V] = inv[r] * (e[r] . v[:, col : col + 8V]).
template <int R, int V>
OV2SEG_AVX2 inline void OutputTile(const Problem& pr, const float* p, const float* inv,
                                   const float* v, float* o, int64_t col) {
  static_assert(R >= 1 && R <= 3 && V >= 1 && V <= 4, "tile too large for 16 registers");
  const int64_t n = pr.n, d = pr.d, np = pr.np, stride = pr.h * pr.d;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
  const float* vj = v + col;
  for (int64_t j = 0; j < n; ++j, vj += d) {
    const __m256 b0 = _mm256_broadcast_ss(p + j);
    const __m256 b1 = R > 1 ? _mm256_broadcast_ss(p + np + j) : b0;
    const __m256 b2 = R > 2 ? _mm256_broadcast_ss(p + 2 * np + j) : b0;
    OV2SEG_TILE_STEP(0, _mm256_loadu_ps(vj))
    OV2SEG_TILE_STEP(1, _mm256_loadu_ps(vj + 8))
    OV2SEG_TILE_STEP(2, _mm256_loadu_ps(vj + 16))
    OV2SEG_TILE_STEP(3, _mm256_loadu_ps(vj + 24))
  }
  const __m256 s0 = _mm256_set1_ps(inv[0]);
  const __m256 s1 = R > 1 ? _mm256_set1_ps(inv[1]) : s0;
  const __m256 s2 = R > 2 ? _mm256_set1_ps(inv[2]) : s0;
  float* dst = o + col;
  OV2SEG_TILE_STORE(0, dst, s0, s1, s2)
  OV2SEG_TILE_STORE(1, dst, s0, s1, s2)
  OV2SEG_TILE_STORE(2, dst, s0, s1, s2)
  OV2SEG_TILE_STORE(3, dst, s0, s1, s2)
}

template <int R>
OV2SEG_AVX2 void OutputRows(const Problem& pr, const float* p, const float* inv, const float* v,
                            float* o) {
  int64_t col = 0;
  for (; col + 32 <= pr.d; col += 32) OutputTile<R, 4>(pr, p, inv, v, o, col);
  switch ((pr.d - col) / 8) {
    case 3: OutputTile<R, 3>(pr, p, inv, v, o, col); break;
    case 2: OutputTile<R, 2>(pr, p, inv, v, o, col); break;
    case 1: OutputTile<R, 1>(pr, p, inv, v, o, col); break;
    default: break;
  }
}

// Rows go in blocks of kBlock: logits two rows at a time, output three rows at a time.
constexpr int64_t kBlock = 6;

OV2SEG_AVX2 void UnitAvx2Body(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  PackKAvx2(pr, g, h, sc);
  float inv[kBlock];
  float* s = sc.s.data();
  for (int64_t i0 = 0; i0 < pr.n; i0 += kBlock) {
    const int64_t rows = std::min(kBlock, pr.n - i0);
    for (int64_t r = 0; r < rows; r += 2) {
      const float* q = sc.q.data() + (i0 + r) * pr.d;
      if (rows - r >= 2) {
        LogitRows<2>(pr, q, sc.kt.data(), s + r * pr.np);
      } else {
        LogitRows<1>(pr, q, sc.kt.data(), s + r * pr.np);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      const float* b = pr.bias + (h * pr.n + i) * pr.n;
      const float* m = pr.windows ? pr.mask + ((g % pr.windows) * pr.n + i) * pr.n : nullptr;
      inv[r] = SoftmaxRow(pr, b, m, s + r * pr.np);
    }
    for (int64_t r = 0; r < rows; r += 3) {
      float* o = pr.out + ((g * pr.n + i0 + r) * pr.h + h) * pr.d;
      const float* p = s + r * pr.np;
      switch (std::min<int64_t>(3, rows - r)) {
        case 3: OutputRows<3>(pr, p, inv + r, sc.v.data(), o); break;
        case 2: OutputRows<2>(pr, p, inv + r, sc.v.data(), o); break;
        default: OutputRows<1>(pr, p, inv + r, sc.v.data(), o); break;
      }
    }
  }
}

#endif  // OV2SEG_X86

}  // namespace

#if OV2SEG_X86
void PackAvx2(const Problem& pr, int64_t g, int64_t h, Scratch& sc) { PackKAvx2(pr, g, h, sc); }
void UnitAvx2(const Problem& pr, int64_t g, int64_t h, Scratch& sc) { UnitAvx2Body(pr, g, h, sc); }
#else
void PackAvx2(const Problem&, int64_t, int64_t, Scratch&) {}
void UnitAvx2(const Problem&, int64_t, int64_t, Scratch&) {}
void UnitAvx512(const Problem&, int64_t, int64_t, Scratch&) {}
#endif

namespace {

using ov2seg_native::kAvx2Path;
using ov2seg_native::kAvx512Path;
using ov2seg_native::kBestPath;

// Whether `path` runs here: the CPU has it and the head width fits its vectors.
bool PathRuns(int64_t path, const Problem& pr) {
  const int64_t width = path == kAvx512Path ? 16 : path == kAvx2Path ? 8 : 1;
  return ov2seg_native::CpuRuns(path) && pr.d % width == 0;
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv, ffi::Buffer<ffi::F32> bias,
                   ffi::Buffer<ffi::F32> mask, float scale, int64_t path,
                   ffi::ResultBuffer<ffi::F32> out) {
  const auto qd = qkv.dimensions();
  const auto bd = bias.dimensions();
  const auto md = mask.dimensions();
  if (qd.size() != 5 || qd[2] != 3 || bd.size() != 3 || md.size() != 3) {
    return ffi::Error::InvalidArgument(
        "window_attention_cpu: want qkv (G, N, 3, H, D), bias (H, N, N), mask (W, N, N)");
  }
  Problem pr{qd[0], qd[1], qd[3], qd[4], md[0], 0, scale,
             qkv.typed_data(), bias.typed_data(), mask.typed_data(), out->typed_data()};
  pr.np = (pr.n + 15) / 16 * 16;
  if (bd[0] != pr.h || bd[1] != pr.n || bd[2] != pr.n || md[1] != pr.n || md[2] != pr.n ||
      (pr.windows && pr.g % pr.windows)) {
    return ffi::Error::InvalidArgument("window_attention_cpu: bias/mask do not match qkv");
  }
  if (path == kBestPath) {
    path = ov2seg_native::WidestPath([&](int64_t p) { return PathRuns(p, pr); });
  } else if (!PathRuns(path, pr)) {
    return ffi::Error::InvalidArgument(
        "window_attention_cpu: the requested code path does not run on this CPU or head width");
  }
  void (*unit_fn)(const Problem&, int64_t, int64_t, Scratch&) =
      path == kAvx512Path ? UnitAvx512 : path == kAvx2Path ? UnitAvx2 : UnitPortable;
  ParallelFor(pool, pr.g * pr.h, [&](int64_t unit) {
    thread_local Scratch sc;
    sc.Fit(pr);
    unit_fn(pr, unit / pr.h, unit % pr.h, sc);
  });
  return ffi::Error::Success();
}

}  // namespace
}  // namespace ov2seg_window_attention

XLA_FFI_DEFINE_HANDLER_SYMBOL(WindowAttentionForwardF32, ov2seg_window_attention::Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("path")
                                  .Ret<ffi::Buffer<ffi::F32>>());
