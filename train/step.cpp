// forward_backward: views -> projections -> global objective -> backward.
#include "train/step.h"

#include <chrono>

#include "core/check.h"
#include "train/global_objective.h"

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

StepOutput forward_backward(model::ContrastiveModel& model, dist::Communicator& comm,
                            const torch::Tensor& view1, const torch::Tensor& view2, ViewForward mode,
                            const loss::ObjectiveOptions& objective, double loss_scale, bool timed) {
  using clock = std::chrono::steady_clock;
  const torch::Device device = view1.device();
  auto mark = [&] {
    if (timed) synchronize_device(device);
    return clock::now();
  };
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  StepOutput out;
  const auto t0 = mark();
  torch::Tensor z1, z2;
  if (mode == ViewForward::PerView) {
    z1 = model->forward(view1).projection;
    z2 = model->forward(view2).projection;
  } else {
    const torch::Tensor both = model->forward(torch::cat({view1, view2}, 0)).projection;
    z1 = both.narrow(0, 0, view1.size(0));
    z2 = both.narrow(0, view1.size(0), view2.size(0));
  }
  const auto t1 = mark();
  loss::ObjectiveResult result = global_objective(comm, z1, z2, objective);
  const auto t2 = mark();
  (loss_scale == 1.0 ? result.loss : result.loss * loss_scale).backward();
  const auto t3 = mark();
  out.loss = result.loss.detach();
  out.stats = result.stats;
  out.forward_seconds = seconds(t0, t1);
  out.objective_seconds = seconds(t1, t2);
  out.backward_seconds = seconds(t2, t3);
  return out;
}

}  // namespace hcl::train
