// core/cuda_memory.cpp's functions in a build without CUDA; CMake compiles this file instead.
#include "core/check.h"
#include "core/device.h"

namespace hcl {

double peak_device_memory_mib(const torch::Device&) {
  throw Error("peak_device_memory_mib: hcl was built without CUDA");
}

double device_memory_reserved_mib(const torch::Device&) {
  throw Error("device_memory_reserved_mib: hcl was built without CUDA");
}

void reset_peak_device_memory(const torch::Device&) {
  throw Error("reset_peak_device_memory: hcl was built without CUDA");
}

}  // namespace hcl
