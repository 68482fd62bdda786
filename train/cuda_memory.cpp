// Peak device memory for CUDA builds: the caching allocator's peak of allocated bytes.
#include <c10/cuda/CUDACachingAllocator.h>

#include "train/step.h"

namespace hcl::train {

double peak_device_memory_mib(const torch::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  const auto& peak = stats.allocated_bytes[static_cast<size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)].peak;
  return static_cast<double>(peak) / (1 << 20);
}

void reset_peak_device_memory(const torch::Device& device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
}

}  // namespace hcl::train
