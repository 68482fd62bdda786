// SyncBatchNorm for 1-d (N x C) and 2-d (N x C x H x W) inputs: in training, the batch mean and
// variance cover every rank's batch (one all-gather of each rank's count, mean and sum of squared
// deviations, combined exactly), and the backward flows through that gather, so W ranks of B
// images normalise exactly like one process with W*B. Running statistics are updated as that one
// process would. Parameters and buffers have BatchNorm's names (weight, bias, running_mean,
// running_var, num_batches_tracked), so state dicts are interchangeable. Eval mode uses the running
// statistics and communicates nothing.
#pragma once

#include <torch/torch.h>

#include "dist/communicator.h"

namespace hcl::dist {

class SyncBatchNormImpl : public torch::nn::Module {
 public:
  // `comm` must outlive the module (and every backward through it).
  SyncBatchNormImpl(int64_t num_features, Communicator& comm, double eps = 1e-5, double momentum = 0.1);
  torch::Tensor forward(const torch::Tensor& input);

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  int64_t num_features_;
  double eps_, momentum_;
  Communicator* comm_;
};
TORCH_MODULE(SyncBatchNorm);

}  // namespace hcl::dist
