// The view-forward mode's names and the device helpers of the training step.
#include "train/step.h"

#include "core/check.h"

namespace hcl::train {

ViewForward parse_view_forward(const std::string& name) {
  if (name == "per-view") return ViewForward::PerView;
  if (name == "joint") return ViewForward::Joint;
  throw Error("unknown view forward '" + name + "' (expected per-view or joint)");
}

const char* to_string(ViewForward mode) { return mode == ViewForward::PerView ? "per-view" : "joint"; }

void synchronize_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void configure_fast_math(const torch::Device& device) {
  if (!device.is_cuda()) return;
  at::globalContext().setFloat32MatmulPrecision("high");  // TF32 matrix products
  at::globalContext().setAllowTF32CuDNN(true);
  at::globalContext().setBenchmarkCuDNN(true);
}

#ifndef HCL_WITH_NCCL
double peak_device_memory_mib(const torch::Device&) {
  throw Error("peak_device_memory_mib: hcl was built without CUDA");
}

void reset_peak_device_memory(const torch::Device&) {
  throw Error("reset_peak_device_memory: hcl was built without CUDA");
}
#endif

}  // namespace hcl::train
