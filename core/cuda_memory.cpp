// Peak device memory for CUDA builds: the caching allocator's peak of allocated bytes.
#include <c10/cuda/CUDACachingAllocator.h>

#include "core/device.h"
#include "core/torch_compat.h"

namespace hcl {

double peak_device_memory_mib(const torch::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  constexpr auto all_pools = static_cast<size_t>(compat::allocator_stats::StatType::AGGREGATE);
  const auto peak = stats.allocated_bytes[all_pools].peak;
  return static_cast<double>(peak) / (1 << 20);
}

double device_memory_reserved_mib(const torch::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  constexpr auto all_pools = static_cast<size_t>(compat::allocator_stats::StatType::AGGREGATE);
  return static_cast<double>(stats.reserved_bytes[all_pools].current) / (1 << 20);
}

void reset_peak_device_memory(const torch::Device& device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
}

}  // namespace hcl
