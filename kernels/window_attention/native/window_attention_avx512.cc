// The window attention core's AVX-512 path (see window_attention_cpu.cc for the computation and
// the other paths). x86-64 CPUs with AVX-512F, chosen at run time; head width a multiple of 16.
//
// With 32 vector registers a unit goes eight query rows at a time: logits four rows by up to 96
// columns per register tile (24 accumulators), the softmax row by row, then the eight output rows
// at once (16 accumulators for a 32-wide head). Every output element accumulates in the same
// order as on the AVX2 path, with the same fused multiply-adds; only the softmax sums are added
// in another order (16 lanes instead of 8).

#include "window_attention/native/window_attention_common.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 intrinsics pass a self-initialised _mm512_undefined_*() through, which
// -Wmaybe-uninitialized reports at every use once inlined; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define OV2SEG_AVX512 __attribute__((target("avx512f,avx2,fma")))

namespace ov2seg_window_attention {
namespace {

constexpr int64_t kBlock = kMaxBlockRows;  // query rows per block: 8
constexpr int64_t kLogitRows = 4;

OV2SEG_AVX512 inline __m512 Exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpLow));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

// Reductions over the 16 lanes by halving (256-bit halves, 128-bit quarters, then within lanes);
// the result is in every lane.
OV2SEG_AVX512 inline float HorizontalMax(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_max_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_max_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_cvtss_f32(v);
}

OV2SEG_AVX512 inline float HorizontalSum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_cvtss_f32(v);
}

// acc[r][u] = sum over j < k of a[r * a_row + j] * b[j * b_step + 16 u], for R rows of `a` and V
// vectors of `b` (R * V accumulators, which the fully unrolled loops keep in registers). Both
// products of a unit are this tile: logits (a = q, b = k^T) and output rows (a = exp, b = v).
template <int R, int V>
OV2SEG_AVX512 inline void FmaTile(const float* a, int64_t a_row, const float* b, int64_t b_step,
                                  int64_t k, __m512 (&acc)[R][V]) {
  static_assert(R >= 1 && R <= 8 && V >= 1 && R * V <= 24, "tile too large for 32 registers");
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int u = 0; u < V; ++u) acc[r][u] = _mm512_setzero_ps();
  for (int64_t j = 0; j < k; ++j, b += b_step) {
    __m512 x[V];
#pragma GCC unroll 6
    for (int u = 0; u < V; ++u) x[u] = _mm512_loadu_ps(b + 16 * u);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_set1_ps(a[r * a_row + j]);
#pragma GCC unroll 6
      for (int u = 0; u < V; ++u) acc[r][u] = _mm512_fmadd_ps(w, x[u], acc[r][u]);
    }
  }
}

// s[r][col : col + 16V] = q[r] . k^T[:, col : col + 16V] for R rows.
template <int R, int V>
OV2SEG_AVX512 inline void LogitTile(const Problem& pr, const float* q, const float* kt, float* s,
                                    int64_t col) {
  static_assert(R <= 4 && V <= 6, "logit tiles are at most 4 x 6 vectors");
  __m512 acc[R][V];
  FmaTile<R, V>(q, pr.d, kt + col, pr.np, pr.d, acc);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int u = 0; u < V; ++u) _mm512_storeu_ps(s + r * pr.np + col + 16 * u, acc[r][u]);
}

template <int R>
OV2SEG_AVX512 void LogitRows(const Problem& pr, const float* q, const float* kt, float* s) {
  int64_t col = 0;
  for (; col + 96 <= pr.np; col += 96) LogitTile<R, 6>(pr, q, kt, s, col);
  switch ((pr.np - col) / 16) {
    case 5: LogitTile<R, 5>(pr, q, kt, s, col); break;
    case 4: LogitTile<R, 4>(pr, q, kt, s, col); break;
    case 3: LogitTile<R, 3>(pr, q, kt, s, col); break;
    case 2: LogitTile<R, 2>(pr, q, kt, s, col); break;
    case 1: LogitTile<R, 1>(pr, q, kt, s, col); break;
    default: break;
  }
}

// Adds bias and mask to one row of logits, replaces it by exp(x - max) and returns 1 / sum.
OV2SEG_AVX512 float SoftmaxRow(const Problem& pr, const float* b, const float* m, float* row) {
  const int64_t n = pr.n, full = n - n % 16;
  __m512 top16 = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 16) {
    __m512 x = _mm512_add_ps(_mm512_loadu_ps(row + j), _mm512_loadu_ps(b + j));
    if (m) x = _mm512_add_ps(x, _mm512_loadu_ps(m + j));
    _mm512_storeu_ps(row + j, x);
    top16 = _mm512_max_ps(top16, x);
  }
  float top = HorizontalMax(top16);
  for (int64_t j = full; j < n; ++j) {
    float x = row[j] + b[j];
    if (m) x = x + m[j];
    row[j] = x;
    top = std::max(top, x);
  }
  const __m512 top_v = _mm512_set1_ps(top);
  __m512 sum16 = _mm512_setzero_ps();
  for (int64_t j = 0; j < full; j += 16) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), top_v));
    _mm512_storeu_ps(row + j, e);
    sum16 = _mm512_add_ps(sum16, e);
  }
  float sum = HorizontalSum(sum16);
  for (int64_t j = full; j < n; ++j) {
    row[j] = ExpScalar(row[j] - top);
    sum += row[j];
  }
  return 1.0f / sum;
}

// out rows [i0, i0 + R) [col : col + 16V] = inv[r] * (e[r] . v[:, col : col + 16V]).
template <int R, int V>
OV2SEG_AVX512 inline void OutputTile(const Problem& pr, const float* p, const float* inv,
                                     const float* v, float* o, int64_t col) {
  static_assert(V <= 2, "output tiles are at most 8 x 2 vectors");
  const int64_t stride = pr.h * pr.d;  // between the output rows of consecutive tokens
  __m512 acc[R][V];
  FmaTile<R, V>(p, pr.np, v + col, pr.d, pr.n, acc);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 2
    for (int u = 0; u < V; ++u)
      _mm512_storeu_ps(o + r * stride + col + 16 * u, _mm512_mul_ps(acc[r][u], scale));
  }
}

template <int R>
OV2SEG_AVX512 void OutputRows(const Problem& pr, const float* p, const float* inv,
                              const float* v, float* o) {
  int64_t col = 0;
  for (; col + 32 <= pr.d; col += 32) OutputTile<R, 2>(pr, p, inv, v, o, col);
  if (col < pr.d) OutputTile<R, 1>(pr, p, inv, v, o, col);
}

OV2SEG_AVX512 void OutputBlock(const Problem& pr, int64_t rows, const float* p, const float* inv,
                               const float* v, float* o) {
  switch (rows) {
    case 8: OutputRows<8>(pr, p, inv, v, o); break;
    case 7: OutputRows<7>(pr, p, inv, v, o); break;
    case 6: OutputRows<6>(pr, p, inv, v, o); break;
    case 5: OutputRows<5>(pr, p, inv, v, o); break;
    case 4: OutputRows<4>(pr, p, inv, v, o); break;
    case 3: OutputRows<3>(pr, p, inv, v, o); break;
    case 2: OutputRows<2>(pr, p, inv, v, o); break;
    default: OutputRows<1>(pr, p, inv, v, o); break;
  }
}

OV2SEG_AVX512 void UnitBody(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  float inv[kBlock];
  float* s = sc.s.data();
  for (int64_t i0 = 0; i0 < pr.n; i0 += kBlock) {
    const int64_t rows = std::min(kBlock, pr.n - i0);
    for (int64_t r = 0; r < rows; r += kLogitRows) {
      const float* q = sc.q.data() + (i0 + r) * pr.d;
      float* dst = s + r * pr.np;
      switch (std::min(kLogitRows, rows - r)) {
        case 4: LogitRows<4>(pr, q, sc.kt.data(), dst); break;
        case 3: LogitRows<3>(pr, q, sc.kt.data(), dst); break;
        case 2: LogitRows<2>(pr, q, sc.kt.data(), dst); break;
        default: LogitRows<1>(pr, q, sc.kt.data(), dst); break;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      const float* b = pr.bias + (h * pr.n + i) * pr.n;
      const float* m = pr.windows ? pr.mask + ((g % pr.windows) * pr.n + i) * pr.n : nullptr;
      inv[r] = SoftmaxRow(pr, b, m, s + r * pr.np);
    }
    OutputBlock(pr, rows, s, inv, sc.v.data(), pr.out + ((g * pr.n + i0) * pr.h + h) * pr.d);
  }
}

}  // namespace

void UnitAvx512(const Problem& pr, int64_t g, int64_t h, Scratch& sc) {
  PackAvx2(pr, g, h, sc);  // q, v and k^T (the 8 x 8 transposes serve here too)
  UnitBody(pr, g, h, sc);
}

}  // namespace ov2seg_window_attention

#endif  // x86-64
