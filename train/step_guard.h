// Non-finite steps. A step whose loss or averaged gradients are not finite on some rank is skipped
// on every rank together (the decision is one all-reduce), so nothing non-finite reaches the
// parameters, the optimizer state or the BatchNorm running statistics (those are restored to their
// values before the step). After max_consecutive skipped steps in a row the run stops.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "dist/communicator.h"

namespace hcl::train {

// L2 norm of all gradients of `params` (a 0-d float tensor; 0 when none has a gradient).
torch::Tensor gradient_norm(const std::vector<torch::Tensor>& params);

class StepGuard {
 public:
  // `module` must outlive the guard. max_consecutive >= 1.
  StepGuard(torch::nn::Module& module, int64_t max_consecutive);

  // Before the step's first forward: remembers the buffers that forward passes update.
  void before_forward();

  // After the gradients are synchronised: whether the optimizer may step. On false the gradients
  // are zeroed, the buffers restored and the skip counted; when that makes max_consecutive skips in
  // a row, throws hcl::AgreedError on every rank. Collective over `comm` (one all-reduce, and one
  // read of the result on the host). `step` (1-based) only names the step in messages.
  bool check(dist::Communicator& comm, const torch::Tensor& loss, int64_t step);

  // L2 norm of the gradients that check() saw (a 0-d tensor on the gradients' device).
  const torch::Tensor& grad_norm() const { return grad_norm_; }
  int64_t skipped() const { return skipped_; }
  int64_t consecutive() const { return consecutive_; }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> buffers_;
  std::vector<torch::Tensor> saved_buffers_;
  int64_t max_consecutive_;
  int64_t skipped_ = 0;
  int64_t consecutive_ = 0;
  torch::Tensor grad_norm_;
};

}  // namespace hcl::train
