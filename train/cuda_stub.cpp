// train/'s CUDA functions in a build without CUDA (the real ones: phase_timer_cuda.cpp); CMake
// compiles this file instead.
#include "core/check.h"
#include "train/phase_timer.h"

namespace hcl::train {

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device&) {
  throw Error("PhaseTimer: a CUDA device was given but hcl was built without CUDA");
}

}  // namespace hcl::train
