// The native library's one plain C entry point: the vector code paths this CPU runs, as bits
// (1: portable, 2: AVX2/FMA, 4: AVX-512), read by kernels/native_library.py for tests and reports.
#include "native/cpu_features.h"

extern "C" int64_t Ov2segCpuPaths() {
  using namespace ov2seg_native;
  return 1 | (CpuHasAvx2() ? 2 : 0) | (CpuHasAvx512() ? 4 : 0);
}
