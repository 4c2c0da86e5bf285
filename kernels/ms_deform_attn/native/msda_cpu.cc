// Multi-scale deformable attention core on CPU, as XLA FFI handlers (forward and backward).
//
// The same computation as kernels/ms_deform_attn/reference.py, written as loops that gather,
// weight and accumulate one sample at a time, so the (N, Lq, M, L, P, 4, D) corner tensor the
// reference materialises never exists: the working set is one head's values plus a D-wide
// accumulator. Work is split over (batch, head) pairs on XLA's intra-op thread pool; pairs write
// disjoint slices of every output (including the value gradient), so no atomics are needed.
//
// Sampling rules (shared with the reference and the Pallas kernels, see corners.py): the pixel
// coordinate is grid_sample's ((2x - 1 + 1) * W - 1) / 2 (align_corners=False), the top-left
// neighbour is (floor(py), floor(px)), a neighbour outside the level contributes zero, and a sample
// whose top-left neighbour lies outside [-1, W-1] x [-1, H-1] (or is not finite) contributes
// nothing and receives zero gradients. Build with -ffp-contract=off so the coordinate rounds as in
// the reference.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "native/parallel_for.h"

namespace ffi = xla::ffi;

namespace {

using ov2seg_native::ParallelFor;

struct Problem {
  int64_t n, s, m, d, lq, l, p;
  std::vector<int64_t> heights, widths, starts;
};

template <typename T>
struct Taps {
  bool inside;
  int64_t x0, y0;
  T fx, fy;
};

template <typename T>
inline Taps<T> SampleTaps(T x, T y, int64_t height, int64_t width) {
  const T px = ((T(2) * x - T(1) + T(1)) * T(width) - T(1)) / T(2);
  const T py = ((T(2) * y - T(1) + T(1)) * T(height) - T(1)) / T(2);
  const T fx0 = std::floor(px);
  const T fy0 = std::floor(py);
  Taps<T> taps{};
  // NaN and +-inf fail every comparison.
  taps.inside = fx0 >= T(-1) && fx0 <= T(width - 1) && fy0 >= T(-1) && fy0 <= T(height - 1);
  if (taps.inside) {
    taps.x0 = static_cast<int64_t>(fx0);
    taps.y0 = static_cast<int64_t>(fy0);
    taps.fx = px - fx0;
    taps.fy = py - fy0;
  }
  return taps;
}

ffi::Error ReadProblem(ffi::Span<const int64_t> value_dims, ffi::Span<const int64_t> loc_dims,
                       ffi::Span<const int64_t> heights, ffi::Span<const int64_t> widths,
                       Problem* problem) {
  if (value_dims.size() != 4 || loc_dims.size() != 6 || heights.size() != widths.size()) {
    return ffi::Error::InvalidArgument("msda_cpu: bad ranks of value/locations/levels");
  }
  problem->n = value_dims[0];
  problem->s = value_dims[1];
  problem->m = value_dims[2];
  problem->d = value_dims[3];
  problem->lq = loc_dims[1];
  problem->l = loc_dims[3];
  problem->p = loc_dims[4];
  if (problem->l != static_cast<int64_t>(heights.size())) {
    return ffi::Error::InvalidArgument("msda_cpu: levels differ from spatial shapes");
  }
  int64_t start = 0;
  for (size_t i = 0; i < heights.size(); ++i) {
    problem->heights.push_back(heights[i]);
    problem->widths.push_back(widths[i]);
    problem->starts.push_back(start);
    start += heights[i] * widths[i];
  }
  if (start != problem->s) {
    return ffi::Error::InvalidArgument("msda_cpu: spatial shapes do not sum to S");
  }
  return ffi::Error::Success();
}

// Pointers and sizes of one call, shared by the forward and backward units.
template <typename T>
struct Tensors {
  const T* value;
  const T* locations;
  const T* weights;
  const T* grad_output;  // backward only
  T* output;             // forward: (N, Lq, M, D)
  T* grad_value;         // backward: (N, S, M, D), (N, Lq, M, L, P, 2), (N, Lq, M, L, P)
  T* grad_locations;
  T* grad_weights;
};

// Channel count as a compile-time constant when kD > 0 (the loops over it then unroll and the
// accumulator lives in registers), else read at run time.
template <int kD>
inline int64_t Channels(const Problem& pr) {
  return kD > 0 ? kD : pr.d;
}

template <typename T, int kD>
void ForwardUnit(const Problem& pr, const Tensors<T>& t, int64_t n, int64_t m) {
  const int64_t D = Channels<kD>(pr), M = pr.m, L = pr.l, P = pr.p, Lq = pr.lq, S = pr.s;
  constexpr int64_t kStack = kD > 0 ? kD : 1;
  T stack_acc[kStack];
  std::vector<T> heap_acc(kD > 0 ? 0 : D);
  T* acc = kD > 0 ? stack_acc : heap_acc.data();
  const T* v_nm = t.value + (n * S * M + m) * D;  // pixel s of this (n, m) at v_nm[s * M * D]
  for (int64_t q = 0; q < Lq; ++q) {
    for (int64_t c = 0; c < D; ++c) acc[c] = T(0);
    const int64_t base = ((n * Lq + q) * M + m) * L * P;
    for (int64_t lvl = 0; lvl < L; ++lvl) {
      const int64_t H = pr.heights[lvl], W = pr.widths[lvl];
      const T* v_level = v_nm + pr.starts[lvl] * M * D;
      for (int64_t pt = 0; pt < P; ++pt) {
        const int64_t idx = base + lvl * P + pt;
        const Taps<T> tap = SampleTaps<T>(t.locations[2 * idx], t.locations[2 * idx + 1], H, W);
        if (!tap.inside) continue;
        const T a = t.weights[idx];
        const T gx[2] = {T(1) - tap.fx, tap.fx};
        const T gy[2] = {T(1) - tap.fy, tap.fy};
        for (int dy = 0; dy < 2; ++dy) {
          const int64_t yi = tap.y0 + dy;
          if (yi < 0 || yi >= H) continue;
          for (int dx = 0; dx < 2; ++dx) {
            const int64_t xi = tap.x0 + dx;
            if (xi < 0 || xi >= W) continue;
            const T w = gy[dy] * gx[dx] * a;
            const T* __restrict__ row = v_level + (yi * W + xi) * M * D;
            for (int64_t c = 0; c < D; ++c) acc[c] += w * row[c];
          }
        }
      }
    }
    T* out = t.output + ((n * Lq + q) * M + m) * D;
    for (int64_t c = 0; c < D; ++c) out[c] = acc[c];
  }
}

template <typename T, int kD>
void BackwardUnit(const Problem& pr, const Tensors<T>& t, int64_t n, int64_t m) {
  const int64_t D = Channels<kD>(pr), M = pr.m, L = pr.l, P = pr.p, Lq = pr.lq, S = pr.s;
  const T* v_nm = t.value + (n * S * M + m) * D;
  T* gv_nm = t.grad_value + (n * S * M + m) * D;
  for (int64_t s = 0; s < S; ++s) std::fill(gv_nm + s * M * D, gv_nm + s * M * D + D, T(0));
  for (int64_t q = 0; q < Lq; ++q) {
    const T* __restrict__ g = t.grad_output + ((n * Lq + q) * M + m) * D;
    const int64_t base = ((n * Lq + q) * M + m) * L * P;
    for (int64_t lvl = 0; lvl < L; ++lvl) {
      const int64_t H = pr.heights[lvl], W = pr.widths[lvl];
      const int64_t offset = pr.starts[lvl] * M * D;
      for (int64_t pt = 0; pt < P; ++pt) {
        const int64_t idx = base + lvl * P + pt;
        const Taps<T> tap = SampleTaps<T>(t.locations[2 * idx], t.locations[2 * idx + 1], H, W);
        if (!tap.inside) {
          t.grad_locations[2 * idx] = T(0);
          t.grad_locations[2 * idx + 1] = T(0);
          t.grad_weights[idx] = T(0);
          continue;
        }
        const T a = t.weights[idx];
        const T gx[2] = {T(1) - tap.fx, tap.fx};
        const T gy[2] = {T(1) - tap.fy, tap.fy};
        T dots[2][2] = {{T(0), T(0)}, {T(0), T(0)}};
        T grad_a = T(0);
        for (int dy = 0; dy < 2; ++dy) {
          const int64_t yi = tap.y0 + dy;
          if (yi < 0 || yi >= H) continue;
          for (int dx = 0; dx < 2; ++dx) {
            const int64_t xi = tap.x0 + dx;
            if (xi < 0 || xi >= W) continue;
            const int64_t at = offset + (yi * W + xi) * M * D;
            const T* __restrict__ row = v_nm + at;
            T* __restrict__ grow = gv_nm + at;
            const T w = gy[dy] * gx[dx];
            const T wa = w * a;
            T dot = T(0);
            for (int64_t c = 0; c < D; ++c) {
              dot += g[c] * row[c];
              grow[c] += wa * g[c];
            }
            dots[dy][dx] = dot;
            grad_a += w * dot;
          }
        }
        const T d_fx = gy[0] * (dots[0][1] - dots[0][0]) + gy[1] * (dots[1][1] - dots[1][0]);
        const T d_fy = gx[0] * (dots[1][0] - dots[0][0]) + gx[1] * (dots[1][1] - dots[0][1]);
        t.grad_locations[2 * idx] = a * d_fx * T(W);
        t.grad_locations[2 * idx + 1] = a * d_fy * T(H);
        t.grad_weights[idx] = grad_a;
      }
    }
  }
}

// Runs Unit<T, kD>(pr, t, n, m) over every (n, m), with kD = D for the usual head widths.
template <typename T, template <typename, int> class Unit>
void RunUnits(ffi::ThreadPool& pool, const Problem& pr, const Tensors<T>& t) {
  auto run = [&](auto body) {
    ParallelFor(pool, pr.n * pr.m, [&](int64_t unit) { body(pr, t, unit / pr.m, unit % pr.m); });
  };
  switch (pr.d) {
    case 32: run(Unit<T, 32>::Run); break;
    case 64: run(Unit<T, 64>::Run); break;
    default: run(Unit<T, 0>::Run); break;
  }
}

template <typename T, int kD>
struct ForwardOp {
  static void Run(const Problem& pr, const Tensors<T>& t, int64_t n, int64_t m) {
    ForwardUnit<T, kD>(pr, t, n, m);
  }
};

template <typename T, int kD>
struct BackwardOp {
  static void Run(const Problem& pr, const Tensors<T>& t, int64_t n, int64_t m) {
    BackwardUnit<T, kD>(pr, t, n, m);
  }
};

// Reads the problem from the inputs' shapes and the level attributes, then runs Unit over it.
template <typename T, template <typename, int> class Unit, ffi::DataType DT>
ffi::Error Launch(ffi::ThreadPool& pool, const ffi::Buffer<DT>& value,
                  const ffi::Buffer<DT>& locations, ffi::Span<const int64_t> heights,
                  ffi::Span<const int64_t> widths, const Tensors<T>& t) {
  Problem pr;
  if (auto err = ReadProblem(value.dimensions(), locations.dimensions(), heights, widths, &pr);
      !err.success()) {
    return err;
  }
  RunUnits<T, Unit>(pool, pr, t);
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<DT> value, ffi::Buffer<DT> locations,
                   ffi::Buffer<DT> weights, ffi::Span<const int64_t> heights,
                   ffi::Span<const int64_t> widths, ffi::ResultBuffer<DT> output) {
  using T = ffi::NativeType<DT>;
  Tensors<T> t{value.typed_data(), locations.typed_data(), weights.typed_data(), nullptr,
               output->typed_data(), nullptr, nullptr, nullptr};
  return Launch<T, ForwardOp>(pool, value, locations, heights, widths, t);
}

template <ffi::DataType DT>
ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<DT> value, ffi::Buffer<DT> locations,
                    ffi::Buffer<DT> weights, ffi::Buffer<DT> grad_output,
                    ffi::Span<const int64_t> heights, ffi::Span<const int64_t> widths,
                    ffi::ResultBuffer<DT> grad_value, ffi::ResultBuffer<DT> grad_locations,
                    ffi::ResultBuffer<DT> grad_weights) {
  using T = ffi::NativeType<DT>;
  Tensors<T> t{value.typed_data(),      locations.typed_data(),      weights.typed_data(),
               grad_output.typed_data(), nullptr,                     grad_value->typed_data(),
               grad_locations->typed_data(), grad_weights->typed_data()};
  return Launch<T, BackwardOp>(pool, value, locations, heights, widths, t);
}

}  // namespace

#define MSDA_FORWARD(NAME, DT)                                        \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(NAME, Forward<DT>,                     \
                                ffi::Ffi::Bind()                      \
                                    .Ctx<ffi::ThreadPool>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Attr<ffi::Span<const int64_t>>("heights") \
                                    .Attr<ffi::Span<const int64_t>>("widths")  \
                                    .Ret<ffi::Buffer<DT>>());

#define MSDA_BACKWARD(NAME, DT)                                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(NAME, Backward<DT>,                    \
                                ffi::Ffi::Bind()                      \
                                    .Ctx<ffi::ThreadPool>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Arg<ffi::Buffer<DT>>()           \
                                    .Attr<ffi::Span<const int64_t>>("heights") \
                                    .Attr<ffi::Span<const int64_t>>("widths")  \
                                    .Ret<ffi::Buffer<DT>>()           \
                                    .Ret<ffi::Buffer<DT>>()           \
                                    .Ret<ffi::Buffer<DT>>());

MSDA_FORWARD(MsdaForwardF32, ffi::DataType::F32)
MSDA_FORWARD(MsdaForwardF64, ffi::DataType::F64)
MSDA_BACKWARD(MsdaBackwardF32, ffi::DataType::F32)
MSDA_BACKWARD(MsdaBackwardF64, ffi::DataType::F64)
