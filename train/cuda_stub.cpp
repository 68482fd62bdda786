// train/'s CUDA functions in a build without CUDA (the real ones: cuda_memory.cpp and
// phase_timer_cuda.cpp); CMake compiles this file instead of those.
#include "core/check.h"
#include "train/phase_timer.h"
#include "train/step.h"

namespace hcl::train {

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device&) {
  throw Error("PhaseTimer: a CUDA device was given but hcl was built without CUDA");
}

double peak_device_memory_mib(const torch::Device&) {
  throw Error("peak_device_memory_mib: hcl was built without CUDA");
}

void reset_peak_device_memory(const torch::Device&) {
  throw Error("reset_peak_device_memory: hcl was built without CUDA");
}

}  // namespace hcl::train
