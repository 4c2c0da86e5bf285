// Shared by the native CPU kernels: which vector code paths this CPU runs, and the `path`
// attribute every handler takes (kBestPath in programs; the others make tests run one path).
#ifndef OV2SEG_KERNELS_NATIVE_CPU_FEATURES_H_
#define OV2SEG_KERNELS_NATIVE_CPU_FEATURES_H_

#include <cstdint>

namespace ov2seg_native {

enum CpuPath : int64_t { kBestPath = 0, kPortablePath = 1, kAvx2Path = 2, kAvx512Path = 3 };

#if defined(__x86_64__) || defined(_M_X64)
inline bool CpuHasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
inline bool CpuHasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && CpuHasAvx2();
  return has;
}
#else
inline bool CpuHasAvx2() { return false; }
inline bool CpuHasAvx512() { return false; }
#endif

// Whether this CPU runs `path` (any kernel; a kernel may add conditions of its own).
inline bool CpuRuns(int64_t path) {
  switch (path) {
    case kPortablePath: return true;
    case kAvx2Path: return CpuHasAvx2();
    case kAvx512Path: return CpuHasAvx512();
    default: return false;
  }
}

// The widest path for which `runs(path)` holds, trying AVX-512, then AVX2, then the portable
// loops (which always run). `runs` is CpuRuns, or CpuRuns plus a kernel's own conditions.
template <typename Runs>
int64_t WidestPath(Runs runs) {
  return runs(kAvx512Path) ? kAvx512Path : runs(kAvx2Path) ? kAvx2Path : kPortablePath;
}

}  // namespace ov2seg_native

#endif  // OV2SEG_KERNELS_NATIVE_CPU_FEATURES_H_
