// One data-parallel training step's computation: the two views through the model, the global-batch
// objective, and backward. The trainer and the equivalence tests both run exactly this.
#pragma once

#include <torch/torch.h>

#include <string>

#include "dist/communicator.h"
#include "loss/objective.h"
#include "model/contrastive_model.h"

namespace hcl::train {

// One forward per view (the reference: BatchNorm statistics over the B images of a view) or one
// forward over both views (SimCLR's code: statistics over 2B images; faster on a GPU).
enum class ViewForward { PerView, Joint };
ViewForward parse_view_forward(const std::string& name);  // "per-view" or "joint"
const char* to_string(ViewForward mode);

struct StepOutput {
  torch::Tensor loss;  // this rank's loss (detached), before loss_scale
  loss::ObjectiveStats stats;
  double forward_seconds = 0, objective_seconds = 0, backward_seconds = 0;
};

// Forward both views, the global objective over `comm`, then backward of loss * loss_scale
// (1/k for k accumulated micro-batches). Collective. With `timed`, device work is synchronised
// between phases so that the reported seconds are real (costs overlap: use only at log steps).
StepOutput forward_backward(model::ContrastiveModel& model, dist::Communicator& comm,
                            const torch::Tensor& view1, const torch::Tensor& view2, ViewForward mode,
                            const loss::ObjectiveOptions& objective, double loss_scale = 1.0,
                            bool timed = false);

// Waits for queued device work (CUDA) so a host clock measures it; nothing on CPU.
void synchronize_device(const torch::Device& device);

// CUDA: TF32 for float32 matrix products and convolutions, and cuDNN autotuning (the input shapes of
// a run do not change). Nothing on CPU.
void configure_fast_math(const torch::Device& device);

// The most memory LibTorch's CUDA allocator has held on `device` so far, in MiB (train/cuda_memory.cpp;
// throws hcl::Error in a build without CUDA).
double peak_device_memory_mib(const torch::Device& device);
// Starts a new peak for peak_device_memory_mib.
void reset_peak_device_memory(const torch::Device& device);

}  // namespace hcl::train
