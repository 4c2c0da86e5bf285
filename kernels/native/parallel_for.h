// Shared by the native CPU kernels: a parallel loop on XLA's intra-op thread pool.
#ifndef OV2SEG_KERNELS_NATIVE_PARALLEL_FOR_H_
#define OV2SEG_KERNELS_NATIVE_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace ov2seg_native {

// Runs body(i) for i in [0, count) on the calling thread and up to num_threads - 1 pool threads.
template <typename Body>
void ParallelFor(xla::ffi::ThreadPool& pool, int64_t count, const Body& body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), count));
  if (threads <= 1) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  // Late starters find no work left and touch only the shared state, never `body`.
  auto work = [state, count, &body]() {
    int64_t i;
    while ((i = state->next.fetch_add(1)) < count) {
      body(i);
      if (state->done.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> lock(state->mu);
        state->cv.notify_all();
      }
    }
  };
  for (int64_t t = 1; t < threads; ++t) {
    auto task = work;
    pool.Schedule(std::move(task));
  }
  work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done.load() == count; });
}

}  // namespace ov2seg_native

#endif  // OV2SEG_KERNELS_NATIVE_PARALLEL_FOR_H_
