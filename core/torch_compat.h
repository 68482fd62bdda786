// The differences between the LibTorch versions we build against (Debian's 1.13 on CPU, 2.x with
// CUDA on GPU machines and in CI's second build), kept in this one header. Both builds compile every
// source that includes it (scripts/test and scripts/test_libtorch2).
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <torch/version.h>

#include <thread>

// LibTorch 2.4 replaced the per-device autocast functions by ones that take the device type.
#define HCL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// The CUDA caching allocator's statistic kinds (StatType) live in c10::cuda::CUDACachingAllocator in
// 1.13 and in c10::CachingAllocator (shared by every device allocator) in 2.x. Both namespaces are
// named here, so whichever declares StatType is found (an alias of one in the other is not
// ambiguous): use compat::allocator_stats::StatType after including <c10/cuda/CUDACachingAllocator.h>.
namespace c10::CachingAllocator {}
namespace c10::cuda::CUDACachingAllocator {}
namespace hcl::compat::allocator_stats {
using namespace c10::CachingAllocator;
using namespace c10::cuda::CUDACachingAllocator;
}  // namespace hcl::compat::allocator_stats

namespace hcl::compat {

// Blocks until `event` has completed (c10::Event::synchronize is 2.x; 1.13 can only query).
inline void wait_for(const c10::Event& event) {
#if HCL_TORCH_AT_LEAST(2, 0)
  event.synchronize();
#else
  while (!event.query()) std::this_thread::yield();
#endif
}

// Whether CUDA autocast is on in this thread.
inline bool cuda_autocast_enabled() {
#if HCL_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

inline void set_cuda_autocast_enabled(bool enabled) {
#if HCL_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_enabled(enabled);
#endif
}

// RAII: CUDA autocast off for a numerically sensitive region (restored on exit).
class NoCudaAutocast {
 public:
  NoCudaAutocast() : was_enabled_(cuda_autocast_enabled()) {
    if (was_enabled_) set_cuda_autocast_enabled(false);
  }
  ~NoCudaAutocast() {
    if (was_enabled_) set_cuda_autocast_enabled(true);
  }
  NoCudaAutocast(const NoCudaAutocast&) = delete;
  NoCudaAutocast& operator=(const NoCudaAutocast&) = delete;

 private:
  bool was_enabled_;
};

// RAII: CUDA autocast to bfloat16 (C++ autocast defaults to fp16, so the dtype is set explicitly).
class CudaBf16Autocast {
 public:
  CudaBf16Autocast() : was_enabled_(cuda_autocast_enabled()) {
#if HCL_TORCH_AT_LEAST(2, 4)
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    set_cuda_autocast_enabled(true);
  }
  ~CudaBf16Autocast() {
    set_cuda_autocast_enabled(was_enabled_);
#if HCL_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
#else
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
#endif
    if (!was_enabled_) at::autocast::clear_cache();
  }
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool was_enabled_;
  at::ScalarType previous_dtype_;
};

}  // namespace hcl::compat
