// The differences between the LibTorch versions we build against (Debian's 1.13 on CPU, 2.x with
// CUDA on GPU machines and in CI's second build), kept in this one header. Both builds compile every
// source that includes it (scripts/test and scripts/test_libtorch2).
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <torch/version.h>

#include <thread>

#define HCL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// What the code outside this header asks of LibTorch, by feature: the version numbers live here.
// - CUDA-graph capture with a capture mode (capture_begin(pool, mode)): 2.0.
#define HCL_TORCH_HAS_CAPTURE_MODE HCL_TORCH_AT_LEAST(2, 0)
// - c10::Allocator::allocate is non-const, with copy_data to override: 2.3.
#define HCL_TORCH_HAS_MUTABLE_ALLOCATE HCL_TORCH_AT_LEAST(2, 3)
// - fused Adam / SGD kernels with a device learning rate and CPU kernels; the caching allocator's
//   endAllocateToPool(device, pool) and releasePool(device, pool); device-type autocast calls: 2.4.
#define HCL_TORCH_HAS_FUSED_OPTIMIZERS HCL_TORCH_AT_LEAST(2, 4)
#define HCL_TORCH_HAS_POOL_BY_DEVICE HCL_TORCH_AT_LEAST(2, 4)
#define HCL_TORCH_HAS_DEVICE_TYPE_AUTOCAST HCL_TORCH_AT_LEAST(2, 4)
// - the pinned host allocator's capture pools (at::getHostAllocator, end_allocate_to_pool): 2.11
//   (ATen/core/CachingHostAllocator.h of the PyPI wheels: 2.9 and 2.10 lack them, 2.11 and 2.15
//   have them; CUDAGraph's capture_begin starts one, so a failed capture must end it).
#define HCL_TORCH_HAS_HOST_ALLOCATOR_POOLS HCL_TORCH_AT_LEAST(2, 11)

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
#if HCL_TORCH_AT_LEAST(2, 0)  // c10::Event::synchronize
  event.synchronize();
#else
  while (!event.query()) std::this_thread::yield();
#endif
}

// Whether autocast for `device` (kCPU or kCUDA) is on in this thread.
inline bool autocast_enabled(c10::DeviceType device) {
#if HCL_TORCH_HAS_DEVICE_TYPE_AUTOCAST
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType device, bool enabled) {
#if HCL_TORCH_HAS_DEVICE_TYPE_AUTOCAST
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_enabled(enabled);
  else at::autocast::set_cpu_enabled(enabled);
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if HCL_TORCH_HAS_DEVICE_TYPE_AUTOCAST
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType device, at::ScalarType dtype) {
#if HCL_TORCH_HAS_DEVICE_TYPE_AUTOCAST
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

// RAII: autocast off, on the CPU and on CUDA, for a numerically sensitive region (restored on exit).
// The objective's forward and its hand-written backward functions open one: the autograd engine
// carries the autocast state of the thread that called backward() into backward, so a backward
// that recomputes scores would otherwise recompute them in bf16 (what torch.amp.custom_bwd guards).
class NoAutocast {
 public:
  NoAutocast() : was_cpu_(autocast_enabled(c10::DeviceType::CPU)), was_cuda_(autocast_enabled(c10::DeviceType::CUDA)) {
    if (was_cpu_) set_autocast_enabled(c10::DeviceType::CPU, false);
    if (was_cuda_) set_autocast_enabled(c10::DeviceType::CUDA, false);
  }
  ~NoAutocast() {
    if (was_cpu_) set_autocast_enabled(c10::DeviceType::CPU, true);
    if (was_cuda_) set_autocast_enabled(c10::DeviceType::CUDA, true);
  }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;

 private:
  bool was_cpu_, was_cuda_;
};

// RAII: autocast to `dtype` on `device` (C++ autocast on CUDA defaults to fp16, so the dtype is set
// explicitly). CUDA with bf16 is the training step's; the CPU one is the tests' stand-in for it.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, at::ScalarType dtype)
      : device_(device), was_enabled_(autocast_enabled(device)), previous_dtype_(autocast_dtype(device)) {
    set_autocast_dtype(device, dtype);
    set_autocast_enabled(device, true);
  }
  ~AutocastScope() {
    set_autocast_enabled(device_, was_enabled_);
    set_autocast_dtype(device_, previous_dtype_);
    if (!was_enabled_) at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  at::ScalarType previous_dtype_;
};

// The training step's mixed precision: CUDA autocast to bfloat16.
class CudaBf16Autocast : public AutocastScope {
 public:
  CudaBf16Autocast() : AutocastScope(c10::DeviceType::CUDA, at::kBFloat16) {}
};

}  // namespace hcl::compat
