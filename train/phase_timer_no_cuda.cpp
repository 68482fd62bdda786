// make_cuda_device_clock for builds without CUDA (the CUDA one is train/phase_timer_cuda.cpp).
#include "core/check.h"
#include "train/phase_timer.h"

namespace hcl::train {

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device&) {
  throw Error("PhaseTimer: a CUDA device was given but hcl was built without CUDA");
}

}  // namespace hcl::train
