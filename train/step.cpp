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

}  // namespace hcl::train
