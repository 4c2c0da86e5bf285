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
//
// The loops (msda_units.inc) are compiled three times, for SSE2, AVX2 and AVX-512, and the widest
// this CPU runs is chosen at run time (the `path` attribute picks one, for tests); the paths give
// bit-identical results.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "native/cpu_features.h"
#include "native/parallel_for.h"

#if defined(__x86_64__) || defined(_M_X64)
#define OV2SEG_X86 1
#else
#define OV2SEG_X86 0
#endif

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

// The units, once per code path: the same loops compiled for each instruction set.
namespace portable {
#include "ms_deform_attn/native/msda_units.inc"
}  // namespace portable

#if OV2SEG_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "ms_deform_attn/native/msda_units.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
#include "ms_deform_attn/native/msda_units.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

// Runs the forward (or backward) units of code path `path` (kBestPath: the widest this CPU runs).
template <typename T, bool kBackward>
void RunPath(int64_t path, ffi::ThreadPool& pool, const Problem& pr, const Tensors<T>& t) {
  if (path == ov2seg_native::kBestPath) path = ov2seg_native::WidestPath(ov2seg_native::CpuRuns);
#if OV2SEG_X86
  if (path == ov2seg_native::kAvx512Path) {
    return kBackward ? avx512::RunBackward(pool, pr, t) : avx512::RunForward(pool, pr, t);
  }
  if (path == ov2seg_native::kAvx2Path) {
    return kBackward ? avx2::RunBackward(pool, pr, t) : avx2::RunForward(pool, pr, t);
  }
#endif
  return kBackward ? portable::RunBackward(pool, pr, t) : portable::RunForward(pool, pr, t);
}

// Reads the problem from the inputs' shapes and the level attributes, then runs the forward (or
// backward) units of `path` over it.
template <typename T, bool kBackward, ffi::DataType DT>
ffi::Error Launch(ffi::ThreadPool& pool, const ffi::Buffer<DT>& value,
                  const ffi::Buffer<DT>& locations, ffi::Span<const int64_t> heights,
                  ffi::Span<const int64_t> widths, int64_t path, const Tensors<T>& t) {
  Problem pr;
  if (auto err = ReadProblem(value.dimensions(), locations.dimensions(), heights, widths, &pr);
      !err.success()) {
    return err;
  }
  if (path != ov2seg_native::kBestPath && !ov2seg_native::CpuRuns(path)) {
    return ffi::Error::InvalidArgument(
        "msda_cpu: the requested code path does not run on this CPU");
  }
  RunPath<T, kBackward>(path, pool, pr, t);
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<DT> value, ffi::Buffer<DT> locations,
                   ffi::Buffer<DT> weights, ffi::Span<const int64_t> heights,
                   ffi::Span<const int64_t> widths, int64_t path, ffi::ResultBuffer<DT> output) {
  using T = ffi::NativeType<DT>;
  Tensors<T> t{value.typed_data(), locations.typed_data(), weights.typed_data(), nullptr,
               output->typed_data(), nullptr, nullptr, nullptr};
  return Launch<T, false>(pool, value, locations, heights, widths, path, t);
}

template <ffi::DataType DT>
ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<DT> value, ffi::Buffer<DT> locations,
                    ffi::Buffer<DT> weights, ffi::Buffer<DT> grad_output,
                    ffi::Span<const int64_t> heights, ffi::Span<const int64_t> widths,
                    int64_t path, ffi::ResultBuffer<DT> grad_value,
                    ffi::ResultBuffer<DT> grad_locations,
                    ffi::ResultBuffer<DT> grad_weights) {
  using T = ffi::NativeType<DT>;
  Tensors<T> t{value.typed_data(),      locations.typed_data(),      weights.typed_data(),
               grad_output.typed_data(), nullptr,                     grad_value->typed_data(),
               grad_locations->typed_data(), grad_weights->typed_data()};
  return Launch<T, true>(pool, value, locations, heights, widths, path, t);
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
                                    .Attr<int64_t>("path")           \
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
                                    .Attr<int64_t>("path")           \
                                    .Ret<ffi::Buffer<DT>>()           \
                                    .Ret<ffi::Buffer<DT>>()           \
                                    .Ret<ffi::Buffer<DT>>());

MSDA_FORWARD(MsdaForwardF32, ffi::DataType::F32)
MSDA_FORWARD(MsdaForwardF64, ffi::DataType::F64)
MSDA_BACKWARD(MsdaBackwardF32, ffi::DataType::F32)
MSDA_BACKWARD(MsdaBackwardF64, ffi::DataType::F64)
