// Peak bytes held by CPU tensors, for the benchmarks: a CPU allocator that forwards to LibTorch's
// and counts what is live. Unlike the process's peak RSS, it leaves out MPI's buffers, the
// allocator's retained pages and the libraries' own memory, so the figure is the tensors' own and
// the same from run to run. (CUDA tensors have the caching allocator's statistics instead.)
//   hcl::bench::TensorMemory::install();   // before the tensors to count are made
//   ... TensorMemory::reset_peak(); work(); TensorMemory::peak_bytes() - bytes_before ...
#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "core/torch_compat.h"

namespace hcl::bench {

class TensorMemory final : public c10::Allocator {
 public:
  // Makes every later CPU tensor allocation go through the counter (once per process).
  static void install() {
    static TensorMemory* counter = [] {
      auto* c = new TensorMemory(c10::GetCPUAllocator());  // lives as long as the tensors it made
      c10::SetCPUAllocator(c, /*priority=*/100);
      return c;
    }();
    (void)counter;
  }
  static int64_t live_bytes() { return live().load(); }
  static int64_t peak_bytes() { return peak().load(); }
  // From now on the peak is measured from the present live bytes.
  static void reset_peak() { peak().store(live().load()); }

#if HCL_TORCH_HAS_MUTABLE_ALLOCATE
  c10::DataPtr allocate(size_t n) override { return wrap(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#else
  c10::DataPtr allocate(size_t n) const override { return wrap(n); }
#endif

 private:
  // The inner allocation and its size: the context of every DataPtr handed out.
  struct Held {
    c10::DataPtr inner;
    int64_t bytes;
  };

  explicit TensorMemory(c10::Allocator* inner) : inner_(inner) {}

  static std::atomic<int64_t>& live() {
    static std::atomic<int64_t> bytes{0};
    return bytes;
  }
  static std::atomic<int64_t>& peak() {
    static std::atomic<int64_t> bytes{0};
    return bytes;
  }

  c10::DataPtr wrap(size_t n) const {
    auto* held = new Held{inner_->allocate(n), static_cast<int64_t>(n)};
    const int64_t now = live().fetch_add(held->bytes) + held->bytes;
    int64_t seen = peak().load();
    while (now > seen && !peak().compare_exchange_weak(seen, now)) {
    }
    return {held->inner.get(), held, &release, held->inner.device()};
  }

  static void release(void* context) {
    auto* held = static_cast<Held*>(context);
    live().fetch_sub(held->bytes);
    delete held;
  }

  c10::Allocator* inner_;
};

}  // namespace hcl::bench
